// Package mongodb registers the MongoDB engine. It has no capability yet:
// a mongodb cluster in the config is accepted, drd warns that it ships
// nothing for it, and drctl answers "engine mongodb cannot … yet".
//
// Imports internal/engine and internal/config only.
package mongodb

import (
	"github.com/drkit/drkit/internal/config"
	"github.com/drkit/drkit/internal/engine"
)

// Name is the engine's name in the config.
const Name = "mongodb"

// Engine is the MongoDB engine.
type Engine struct{}

func init() { engine.Register(Engine{}) }

// Name implements engine.Engine.
func (Engine) Name() string { return Name }

// ConfigRules implements engine.Configured: no sync checks.
func (Engine) ConfigRules() config.EngineRules { return config.EngineRules{} }
