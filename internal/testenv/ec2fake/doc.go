// Package ec2fake is a FAKE of the Amazon EC2 API, for tests only. No real EC2
// runs on a test machine, and this is the one boundary drkit's tests cannot
// cover with a real server; everything else (PostgreSQL, MariaDB, MinIO ...)
// is real.
//
// It speaks what aws-sdk-go-v2's service/ec2 client sends and reads: HTTP POST
// with the Query protocol's form parameters (Action, Filter.N.Name, ...), XML
// answers and the EC2 error document. One server plays every region: the
// region is read from the request's SigV4 credential scope, as EC2 endpoints
// are per region.
//
// It covers the calls drkit's image and volume snapshot copies make:
// DescribeImages, DescribeSnapshots, DescribeVolumes (filters with * and ?,
// pagination), CopyImage (ClientToken), CopySnapshot, CreateSnapshot,
// CreateTags, DeregisterImage and DeleteSnapshot (refused while an image uses
// the snapshot). Copies and new snapshots are "pending" for a configurable
// time, then "available"/"completed" — or "failed"/"error" when a failure was
// injected. Tests can also inject error codes on named actions, throttle
// (RequestLimitExceeded, HTTP 503), cap pending copies per region
// (ResourceLimitExceeded, as AWS caps concurrent snapshot copies) and read
// back what happened: calls per action and the most copies ever pending at
// once in a region.
//
// What it does not model: accounts and sharing (every resource is the
// caller's), KMS, availability zones, launch permissions, and the presigned
// URL CopySnapshot carries (ignored).
package ec2fake
