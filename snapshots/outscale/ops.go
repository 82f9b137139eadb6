package outscale

import (
	"context"
	"fmt"
	"net/http"

	osc "github.com/outscale/osc-sdk-go/v2"
)

// The OAPI calls the pipeline makes, each through call (retries) and with
// the Region's signature.

func (c *Client) snapshots(ctx context.Context, f osc.FiltersSnapshot) ([]osc.Snapshot, error) {
	acct, err := c.accountID(ctx)
	if err != nil {
		return nil, err
	}
	f.AccountIds = &[]string{acct}
	var out []osc.Snapshot
	req := osc.ReadSnapshotsRequest{Filters: &f}
	for {
		resp, err := call(ctx, c, "ReadSnapshots", func(ctx context.Context) (osc.ReadSnapshotsResponse, *http.Response, error) {
			return c.api.SnapshotApi.ReadSnapshots(ctx).ReadSnapshotsRequest(req).Execute()
		})
		if err != nil {
			return nil, err
		}
		out = append(out, resp.GetSnapshots()...)
		if resp.GetNextPageToken() == "" {
			return out, nil
		}
		req.NextPageToken = resp.NextPageToken
	}
}

func (c *Client) snapshot(ctx context.Context, id string) (osc.Snapshot, error) {
	list, err := c.snapshots(ctx, osc.FiltersSnapshot{SnapshotIds: &[]string{id}})
	if err != nil {
		return osc.Snapshot{}, err
	}
	if len(list) != 1 {
		return osc.Snapshot{}, fmt.Errorf("snapshot %s not found in %s", id, c.Region)
	}
	return list[0], nil
}

func (c *Client) images(ctx context.Context, f osc.FiltersImage) ([]osc.Image, error) {
	acct, err := c.accountID(ctx)
	if err != nil {
		return nil, err
	}
	f.AccountIds = &[]string{acct}
	var out []osc.Image
	req := osc.ReadImagesRequest{Filters: &f}
	for {
		resp, err := call(ctx, c, "ReadImages", func(ctx context.Context) (osc.ReadImagesResponse, *http.Response, error) {
			return c.api.ImageApi.ReadImages(ctx).ReadImagesRequest(req).Execute()
		})
		if err != nil {
			return nil, err
		}
		out = append(out, resp.GetImages()...)
		if resp.GetNextPageToken() == "" {
			return out, nil
		}
		req.NextPageToken = resp.NextPageToken
	}
}

func (c *Client) image(ctx context.Context, id string) (osc.Image, error) {
	list, err := c.images(ctx, osc.FiltersImage{ImageIds: &[]string{id}})
	if err != nil {
		return osc.Image{}, err
	}
	if len(list) != 1 {
		return osc.Image{}, fmt.Errorf("image %s not found in %s", id, c.Region)
	}
	return list[0], nil
}

// exportTask is a snapshot or image export task, in one shape.
type exportTask struct {
	ID, Source, State, Comment string
	Bucket, Prefix             string
	Progress                   int32
	ManifestURL                string
}

func (c *Client) snapshotExports(ctx context.Context, snapshotID string) ([]exportTask, error) {
	req := osc.ReadSnapshotExportTasksRequest{Filters: &osc.FiltersSnapshotExportTask{SnapshotIds: &[]string{snapshotID}}}
	var out []exportTask
	for {
		resp, err := call(ctx, c, "ReadSnapshotExportTasks", func(ctx context.Context) (osc.ReadSnapshotExportTasksResponse, *http.Response, error) {
			return c.api.SnapshotApi.ReadSnapshotExportTasks(ctx).ReadSnapshotExportTasksRequest(req).Execute()
		})
		if err != nil {
			return nil, err
		}
		for _, t := range resp.GetSnapshotExportTasks() {
			e := t.GetOsuExport()
			out = append(out, exportTask{ID: t.GetTaskId(), Source: t.GetSnapshotId(), State: t.GetState(), Comment: t.GetComment(),
				Bucket: e.GetOsuBucket(), Prefix: e.GetOsuPrefix(), Progress: t.GetProgress()})
		}
		if resp.GetNextPageToken() == "" {
			return out, nil
		}
		req.NextPageToken = resp.NextPageToken
	}
}

func (c *Client) imageExports(ctx context.Context) ([]exportTask, error) {
	req := osc.ReadImageExportTasksRequest{}
	var out []exportTask
	for {
		resp, err := call(ctx, c, "ReadImageExportTasks", func(ctx context.Context) (osc.ReadImageExportTasksResponse, *http.Response, error) {
			return c.api.ImageApi.ReadImageExportTasks(ctx).ReadImageExportTasksRequest(req).Execute()
		})
		if err != nil {
			return nil, err
		}
		for _, t := range resp.GetImageExportTasks() {
			e := t.GetOsuExport()
			out = append(out, exportTask{ID: t.GetTaskId(), Source: t.GetImageId(), State: t.GetState(), Comment: t.GetComment(),
				Bucket: e.GetOsuBucket(), Prefix: e.GetOsuPrefix(), Progress: t.GetProgress(), ManifestURL: e.GetOsuManifestUrl()})
		}
		if resp.GetNextPageToken() == "" {
			return out, nil
		}
		req.NextPageToken = resp.NextPageToken
	}
}

func (c *Client) exportSnapshot(ctx context.Context, id, bucket, prefix, format string) (exportTask, error) {
	req := osc.CreateSnapshotExportTaskRequest{SnapshotId: id, OsuExport: osc.OsuExportToCreate{DiskImageFormat: format, OsuBucket: bucket, OsuPrefix: &prefix}}
	resp, err := create(ctx, c, "CreateSnapshotExportTask", func(ctx context.Context) (osc.CreateSnapshotExportTaskResponse, *http.Response, error) {
		return c.api.SnapshotApi.CreateSnapshotExportTask(ctx).CreateSnapshotExportTaskRequest(req).Execute()
	})
	if err != nil {
		return exportTask{}, err
	}
	t := resp.GetSnapshotExportTask()
	return exportTask{ID: t.GetTaskId(), Source: id, State: t.GetState(), Bucket: bucket, Prefix: prefix}, nil
}

func (c *Client) exportImage(ctx context.Context, id, bucket, prefix, format string) (exportTask, error) {
	req := osc.CreateImageExportTaskRequest{ImageId: id, OsuExport: osc.OsuExportToCreate{DiskImageFormat: format, OsuBucket: bucket, OsuPrefix: &prefix}}
	resp, err := create(ctx, c, "CreateImageExportTask", func(ctx context.Context) (osc.CreateImageExportTaskResponse, *http.Response, error) {
		return c.api.ImageApi.CreateImageExportTask(ctx).CreateImageExportTaskRequest(req).Execute()
	})
	if err != nil {
		return exportTask{}, err
	}
	t := resp.GetImageExportTask()
	return exportTask{ID: t.GetTaskId(), Source: id, State: t.GetState(), Bucket: bucket, Prefix: prefix}, nil
}

func (c *Client) importSnapshot(ctx context.Context, fileURL string, size int64, token, desc string) (osc.Snapshot, error) {
	req := osc.CreateSnapshotRequest{FileLocation: &fileURL, SnapshotSize: &size, ClientToken: &token, Description: &desc}
	resp, err := call(ctx, c, "CreateSnapshot", func(ctx context.Context) (osc.CreateSnapshotResponse, *http.Response, error) {
		return c.api.SnapshotApi.CreateSnapshot(ctx).CreateSnapshotRequest(req).Execute()
	})
	return resp.GetSnapshot(), err
}

func (c *Client) importImage(ctx context.Context, fileURL, name, desc string) (osc.Image, error) {
	req := osc.CreateImageRequest{FileLocation: &fileURL, ImageName: &name, Description: &desc}
	resp, err := create(ctx, c, "CreateImage", func(ctx context.Context) (osc.CreateImageResponse, *http.Response, error) {
		return c.api.ImageApi.CreateImage(ctx).CreateImageRequest(req).Execute()
	})
	return resp.GetImage(), err
}

// Tag puts tags on resources.
func (c *Client) Tag(ctx context.Context, ids []string, tags map[string]string) error {
	req := osc.CreateTagsRequest{ResourceIds: ids}
	for k, v := range tags {
		req.Tags = append(req.Tags, osc.ResourceTag{Key: k, Value: v})
	}
	_, err := call(ctx, c, "CreateTags", func(ctx context.Context) (osc.CreateTagsResponse, *http.Response, error) {
		return c.api.TagApi.CreateTags(ctx).CreateTagsRequest(req).Execute()
	})
	return err
}

func (c *Client) volumes(ctx context.Context, f osc.FiltersVolume) ([]osc.Volume, error) {
	var out []osc.Volume
	req := osc.ReadVolumesRequest{Filters: &f}
	for {
		resp, err := call(ctx, c, "ReadVolumes", func(ctx context.Context) (osc.ReadVolumesResponse, *http.Response, error) {
			return c.api.VolumeApi.ReadVolumes(ctx).ReadVolumesRequest(req).Execute()
		})
		if err != nil {
			return nil, err
		}
		out = append(out, resp.GetVolumes()...)
		if resp.GetNextPageToken() == "" {
			return out, nil
		}
		req.NextPageToken = resp.NextPageToken
	}
}

func (c *Client) snapshotVolume(ctx context.Context, volume, desc string) (osc.Snapshot, error) {
	req := osc.CreateSnapshotRequest{VolumeId: &volume, Description: &desc}
	resp, err := create(ctx, c, "CreateSnapshot", func(ctx context.Context) (osc.CreateSnapshotResponse, *http.Response, error) {
		return c.api.SnapshotApi.CreateSnapshot(ctx).CreateSnapshotRequest(req).Execute()
	})
	return resp.GetSnapshot(), err
}

func (c *Client) deleteSnapshot(ctx context.Context, id string) error {
	_, err := call(ctx, c, "DeleteSnapshot", func(ctx context.Context) (osc.DeleteSnapshotResponse, *http.Response, error) {
		return c.api.SnapshotApi.DeleteSnapshot(ctx).DeleteSnapshotRequest(osc.DeleteSnapshotRequest{SnapshotId: id}).Execute()
	})
	return err
}

func (c *Client) deleteImage(ctx context.Context, id string) error {
	_, err := call(ctx, c, "DeleteImage", func(ctx context.Context) (osc.DeleteImageResponse, *http.Response, error) {
		return c.api.ImageApi.DeleteImage(ctx).DeleteImageRequest(osc.DeleteImageRequest{ImageId: id}).Execute()
	})
	return err
}
