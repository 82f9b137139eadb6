package config

import (
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// cloudRegion is an EC2 region name as AWS and Outscale spell them
// (us-east-1, cloudgouv-eu-west-1).
var cloudRegion = regexp.MustCompile(`^[a-z]+(-[a-z0-9]+)+$`)

func (c *Config) validateEC2(p *problems) {
	for _, reg := range sortedKeys(c.EC2.Endpoints) {
		at := "ec2.endpoints." + reg
		if !cloudRegion.MatchString(reg) {
			p.add(c.line(at), "%s: %q is not a region name such as us-east-1", at, reg)
		}
		ep := c.EC2.Endpoints[reg]
		if u, err := url.Parse(ep); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			p.add(c.line(at), "%s %q must be an http:// or https:// URL", at, ep)
		}
	}
	if c.EC2.MaxConcurrentCopies < 1 || c.EC2.MaxConcurrentCopies > 100 {
		p.add(c.line("ec2.max_concurrent_copies"), "ec2.max_concurrent_copies %d is outside 1..100 (AWS allows 20 concurrent snapshot copies per region)", c.EC2.MaxConcurrentCopies)
	}
	if c.EC2.CopyTimeout < Duration(time.Minute) {
		p.add(c.line("ec2.copy_timeout"), "ec2.copy_timeout %s is too short: copies of large volumes take hours; use at least 1m", c.EC2.CopyTimeout)
	}
	if c.EC2.PollInterval < Duration(100*time.Millisecond) || c.EC2.PollInterval > Duration(5*time.Minute) {
		p.add(c.line("ec2.poll_interval"), "ec2.poll_interval %s is outside 100ms..5m", c.EC2.PollInterval)
	}
	c.validateOutscale(p)
	seen := map[string]int{}
	for i, im := range c.Images {
		c.checkMachineCopy(p, "images["+strconv.Itoa(i)+"]", im.MachineCopy, "ami-", seen)
	}
	for i, sc := range c.VolumeSnapshots {
		at := "volume_snapshots[" + strconv.Itoa(i) + "]"
		c.checkMachineCopy(p, at, sc.MachineCopy, "snap-", seen)
		if sc.Create != nil && len(sc.Create.VolumeTags) == 0 {
			p.add(c.line(at+".create"), "%s.create needs volume_tags: the tags of the volumes to snapshot (snapshotting every volume is not a default)", at)
		}
		if sc.Create == nil && len(sc.Filters.Tags) == 0 && len(sc.Filters.IDs) == 0 {
			p.add(c.line(at), "%s has no filters: give filters.tags or filters.ids (or create.volume_tags), so that it does not copy every snapshot of the account", at)
		}
	}
}

// checkMachineCopy validates what image and snapshot entries share; seen
// maps entry names (unique across both lists: copies are tagged with them)
// to their lines.
func (c *Config) checkMachineCopy(p *problems, at string, m MachineCopy, idPrefix string, seen map[string]int) {
	c.checkName(p, at+".name", "image or volume snapshot copy", m.Name, seen)
	if !cloudRegion.MatchString(m.SourceRegion) {
		p.add(c.line(at+".source_region"), "%s.source_region %q is not a region name such as eu-west-1", at, m.SourceRegion)
	}
	if len(m.To) == 0 {
		p.add(c.line(at+".to"), "%s.to is empty: list the regions to copy to", at)
	}
	for j, to := range m.To {
		switch {
		case !cloudRegion.MatchString(to):
			p.add(c.line(at+".to"), "%s.to[%d] %q is not a region name such as us-east-1", at, j, to)
		case to == m.SourceRegion:
			p.add(c.line(at+".to"), "%s.to[%d] is the source region %s: copies go to other regions", at, j, to)
		case slices.Contains(m.To[:j], to):
			p.add(c.line(at+".to"), "%s.to lists %s twice", at, to)
		}
	}
	if strings.HasPrefix(at, "images") && len(m.Filters.Tags) == 0 && len(m.Filters.IDs) == 0 {
		p.add(c.line(at), "%s has no filters: give filters.tags or filters.ids, so that it does not copy every image of the account", at)
	}
	c.checkProvider(p, at, m)
	for _, id := range m.Filters.IDs {
		if !strings.HasPrefix(id, idPrefix) {
			p.add(c.line(at+".filters.ids"), "%s.filters.ids: %q is not an id starting with %s", at, id, idPrefix)
		}
	}
	if m.Keep < 0 {
		p.add(c.line(at+".keep"), "%s.keep %d is negative", at, m.Keep)
	}
	if m.KeepWithin < 0 {
		p.add(c.line(at+".keep_within"), "%s.keep_within %s is negative", at, m.KeepWithin)
	}
	if m.KMSKey != "" && !m.Encrypted {
		p.add(c.line(at+".kms_key"), "%s.kms_key is set but encrypted is not: set encrypted: true to use the key", at)
	}
	c.checkJob(p, at, m.Job)
}

// Providers are the clouds image and snapshot entries may name.
var Providers = []string{"ec2", "outscale"}

func (c *Config) validateOutscale(p *problems) {
	o := c.Outscale
	for _, reg := range sortedKeys(o.Endpoints) {
		at := "outscale.endpoints." + reg
		if u, err := url.Parse(o.Endpoints[reg]); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			p.add(c.line(at), "%s %q must be an http:// or https:// URL", at, o.Endpoints[reg])
		}
	}
	for _, reg := range sortedKeys(o.OOS) {
		at := "outscale.oos." + reg
		if u, err := url.Parse(o.OOS[reg]); err != nil || u.Scheme != "s3" || u.Host == "" {
			p.add(c.line(at), "%s %q must be an s3:// store URL of the Region's OOS bucket (s3://bucket/prefix?endpoint=https://oos.%s.outscale.com&region=%s)", at, RedactURL(o.OOS[reg]), reg, reg)
		}
	}
	if o.DiskImageFormat != "qcow2" && o.DiskImageFormat != "raw" {
		p.add(c.line("outscale.disk_image_format"), "outscale.disk_image_format %q: qcow2 or raw", o.DiskImageFormat)
	}
}

// checkProvider checks an entry's provider, and what an outscale entry
// needs: a transfer bucket in its source Region and every destination, and
// no EC2-only setting.
func (c *Config) checkProvider(p *problems, at string, m MachineCopy) {
	if m.Provider != "" && !slices.Contains(Providers, m.Provider) {
		p.add(c.line(at+".provider"), "%s.provider %q: one of %s", at, m.Provider, strings.Join(Providers, ", "))
		return
	}
	if m.Provider != "outscale" {
		return
	}
	for _, reg := range append([]string{m.SourceRegion}, m.To...) {
		if c.Outscale.OOS[reg] == "" {
			p.add(c.line(at), "%s: outscale.oos has no transfer bucket for Region %s (an OUTSCALE copy goes through OOS buckets in both Regions)", at, reg)
		}
	}
	if m.Encrypted || m.KMSKey != "" {
		p.add(c.line(at), "%s: encrypted and kms_key are EC2 settings; OUTSCALE copies keep the source's", at)
	}
}
