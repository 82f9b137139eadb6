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
// Nothing here names an engine or a store: each engine registers its rules
// (DSN form, defaults, which keys apply; engines.go), and store URLs are
// checked by the storage adapters registered for their schemes.
//
// Imported by cmd and by every component package; of drkit's it imports
// storage only (for the registered schemes).
package config
