// Package all registers every storage adapter; the binaries import it for its
// side effect so that any configured store URL opens.
package all

import (
	_ "github.com/drkit/drkit/storage/file" // file://
	_ "github.com/drkit/drkit/storage/s3"   // s3://
)
