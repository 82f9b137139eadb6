// Package s3 is the s3:// storage adapter, on aws-sdk-go-v2, for AWS S3 and
// S3-compatible servers (MinIO, versitygw, Ceph, ...).
//
// URL: s3://bucket/prefix?endpoint=https://host:9000&region=eu-west-1
// &path_style=true&checksum=when_required|when_supported&profile=NAME
//
// Credentials come from the SDK's standard chain (environment, shared files, web
// identity, instance role), or the shared-config profile named in the URL. A custom
// CA bundle in AWS_CA_BUNDLE applies. TLS is on or off by the endpoint's scheme.
//
// Checksums: since s3 v1.73 the SDK adds CRC32 checksums by default, which many
// S3-compatible servers reject; checksum= chooses. It defaults to when_supported
// on AWS and when_required on a custom endpoint. Either way every multipart part
// carries an explicit checksum the server verifies (CRC32C, or Content-MD5).
//
// Retries: transient errors (throttling, 5xx, resets, timeouts) are retried by the
// SDK's standard retryer with exponential backoff and jitter, up to 10 attempts,
// without the client-side retry quota, which would otherwise turn an outage of a
// few seconds into immediate failures of every queued part.
//
// Multipart is written here rather than taken from the SDK's upload manager,
// because the manager cannot resume: it keeps no record of an upload id or of
// finished parts, so a restarted drd would upload a 100 GiB backup from the start.
// Ours records them in a small state file, continues with ListParts after a crash,
// and verifies each re-read part against its recorded checksum before skipping it.
package s3
