// Package config loads and validates drkit's single YAML configuration file.
//
// The file is found from --config, else $DRKIT_CONFIG, else ./drkit.yaml. Values may
// reference the environment as ${VAR} or ${VAR:-default}; expansion happens on scalar
// values after parsing, so a variable can never inject YAML structure. Every error
// names the file and line it comes from and says what is allowed, because an operator
// reading it may be in the middle of an outage.
//
// Unknown keys are rejected rather than ignored: a misspelt "required_regions" that is
// silently dropped would weaken a durability guarantee without anyone noticing.
//
// Imported by cmd and by every component package; it imports nothing of drkit's.
package config
