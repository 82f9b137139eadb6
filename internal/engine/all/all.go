// Package all registers every engine drkit knows: cmd imports it once, for
// its side effects, and dispatches through internal/engine.
package all

import (
	// Each registers itself in init().
	_ "github.com/drkit/drkit/internal/engine/mongodb"
	_ "github.com/drkit/drkit/internal/engine/mysql"
	_ "github.com/drkit/drkit/internal/engine/postgres"
	_ "github.com/drkit/drkit/internal/engine/redis"
)
