// Package outscale copies OUTSCALE snapshots (BSU) and machine images (OMIs)
// from one Region to another. OUTSCALE's CopySnapshot/CreateSnapshot and
// CopyImage take only a source in the account's own Region, so a copy
// across Regions goes through object storage (OOS):
//
//  1. export: CreateSnapshotExportTask / CreateImageExportTask writes the
//     snapshot (an image: its snapshots and a manifest) to the source
//     Region's transfer bucket under <job>/<destination>/<source id>/, polled with
//     backoff until completed (its progress reported);
//  2. copy: each object is streamed to the destination Region's transfer
//     bucket through storage/s3's resumable multipart upload (server-side
//     copy cannot cross Regions); an image's manifest is rewritten to point
//     at the copies with pre-signed URLs;
//  3. import: CreateSnapshot with FileLocation (a pre-signed URL) and
//     SnapshotSize, idempotent by a client token, or CreateImage with the
//     manifest's pre-signed URL, found again by its name; polled until
//     completed;
//  4. cleanup: the transfer objects are deleted from both buckets once the
//     import is complete, and kept (and reported) when it fails.
//
// Every stage first looks for its work done or under way by an earlier run
// (the export task writing to this transfer's keys, objects of the right
// size, an import with this token or name), so a run after a crash
// resumes and never starts an export or an import twice.
//
// OAPI calls go through github.com/outscale/osc-sdk-go/v2 (access key /
// secret key signature), retried with exponential backoff and jitter when
// throttled (429, 503) or failing (5xx). oapifake (internal/testenv) is the FAKE OAPI the
// tests run against, with two real MinIOs as the Regions' OOS.
//
// Why hand-written: no library or OUTSCALE tool copies snapshots or images
// across Regions; the SDK gives only the calls.
package outscale
