package ec2fake

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// filter is one Filter.N: a name and values with * and ? wildcards.
type filter struct {
	name   string
	values []*regexp.Regexp
}

func filters(f formValues) []filter {
	var out []filter
	for i := 1; f.has(fmt.Sprintf("Filter.%d.Name", i)); i++ {
		fl := filter{name: f.get(fmt.Sprintf("Filter.%d.Name", i))}
		for _, v := range f.list(fmt.Sprintf("Filter.%d.Value", i)) {
			re := regexp.QuoteMeta(v)
			re = strings.NewReplacer(`\*`, ".*", `\?`, ".").Replace(re)
			fl.values = append(fl.values, regexp.MustCompile("^"+re+"$"))
		}
		out = append(out, fl)
	}
	return out
}

// matches reports whether a resource whose filterable fields are fields
// passes every filter (values of one filter are ORed, filters ANDed).
func matches(fs []filter, fields map[string]string, tags map[string]string) bool {
	for _, fl := range fs {
		var v string
		var ok bool
		switch {
		case strings.HasPrefix(fl.name, "tag:"):
			v, ok = tags[strings.TrimPrefix(fl.name, "tag:")]
		case fl.name == "tag-key":
			ok = slices.ContainsFunc(fl.values, func(re *regexp.Regexp) bool {
				for k := range tags {
					if re.MatchString(k) {
						return true
					}
				}
				return false
			})
			if !ok {
				return false
			}
			continue
		default:
			v, ok = fields[fl.name]
		}
		if !ok || !slices.ContainsFunc(fl.values, func(re *regexp.Regexp) bool { return re.MatchString(v) }) {
			return false
		}
	}
	return true
}

// page applies MaxResults/NextToken to ids (sorted) and returns the page and
// the next token ("" on the last page).
func page(ids []string, f formValues) ([]string, string) {
	slices.Sort(ids)
	start, _ := strconv.Atoi(f.get("NextToken"))
	if start > len(ids) {
		start = len(ids)
	}
	n, _ := strconv.Atoi(f.get("MaxResults"))
	if n <= 0 || start+n >= len(ids) {
		return ids[start:], ""
	}
	return ids[start : start+n], strconv.Itoa(start + n)
}

func (s *Server) describeImages(r *region, f formValues) (string, *apiError) {
	return describe(r.images, f.list("ImageId"), "AMIID", "imagesSet", f, func(im *Image) (map[string]string, map[string]string) {
		return map[string]string{"image-id": im.ID, "name": im.Name, "description": im.Description, "state": im.State}, im.Tags
	}, imageXML)
}

func (s *Server) describeSnapshots(r *region, f formValues) (string, *apiError) {
	return describe(r.snapshots, f.list("SnapshotId"), "Snapshot", "snapshotSet", f, func(sn *Snapshot) (map[string]string, map[string]string) {
		return map[string]string{"snapshot-id": sn.ID, "volume-id": sn.VolumeID, "description": sn.Description, "status": sn.State}, sn.Tags
	}, func(sn *Snapshot) string { return snapshotXML(sn, true) })
}

func (s *Server) describeVolumes(r *region, f formValues) (string, *apiError) {
	return describe(r.volumes, nil, "Volume", "volumeSet", f, func(v *Volume) (map[string]string, map[string]string) {
		return map[string]string{"volume-id": v.ID}, v.Tags
	}, func(v *Volume) string {
		return "<item>" + xmlField("volumeId", v.ID) + xmlField("size", strconv.Itoa(int(v.SizeGiB))) +
			xmlField("status", "in-use") + tagsXML(v.Tags) + "</item>"
	})
}

// describe answers a Describe* call over items: every id asked for must
// exist; the filters apply to a resource's fields and tags; the page is
// rendered as the set element, with nextToken when more follow.
func describe[T any](items map[string]*T, want []string, kind, set string, f formValues,
	fields func(*T) (map[string]string, map[string]string), render func(*T) string) (string, *apiError) {
	for _, id := range want {
		if _, ok := items[id]; !ok {
			return "", notFound(kind, id)
		}
	}
	fs := filters(f)
	var ids []string
	for id, it := range items {
		fl, tags := fields(it)
		if (len(want) == 0 || slices.Contains(want, id)) && matches(fs, fl, tags) {
			ids = append(ids, id)
		}
	}
	ids, next := page(ids, f)
	var b strings.Builder
	b.WriteString("<" + set + ">")
	for _, id := range ids {
		b.WriteString(render(items[id]))
	}
	b.WriteString("</" + set + ">")
	if next != "" {
		b.WriteString(xmlField("nextToken", next))
	}
	return b.String(), nil
}

func imageXML(im *Image) string {
	var b strings.Builder
	b.WriteString("<item>")
	b.WriteString(xmlField("imageId", im.ID) + xmlField("imageState", im.State) + xmlField("name", im.Name) +
		xmlField("description", im.Description) + xmlField("creationDate", im.Created.Format("2006-01-02T15:04:05.000Z")) +
		xmlField("imageOwnerId", "123456789012") + xmlField("rootDeviceType", "ebs"))
	b.WriteString("<blockDeviceMapping>")
	for i, sid := range im.Snapshots {
		fmt.Fprintf(&b, "<item>%s<ebs>%s%s</ebs></item>", xmlField("deviceName", fmt.Sprintf("/dev/sd%c", 'a'+i)),
			xmlField("snapshotId", sid), xmlField("volumeSize", "8"))
	}
	b.WriteString("</blockDeviceMapping>")
	b.WriteString(tagsXML(im.Tags))
	b.WriteString("</item>")
	return b.String()
}

// snapshotXML renders a snapshot, as an <item> of a set or (item false) as
// the fields of CreateSnapshot's answer.
func snapshotXML(sn *Snapshot, item bool) string {
	progress := map[string]string{"pending": "50%", "completed": "100%", "error": "0%"}[sn.State]
	body := xmlField("snapshotId", sn.ID) + xmlField("volumeId", sn.VolumeID) + xmlField("status", sn.State) +
		xmlField("startTime", sn.Started.Format("2006-01-02T15:04:05.000Z")) + xmlField("progress", progress) +
		xmlField("ownerId", "123456789012") + xmlField("volumeSize", strconv.Itoa(int(sn.SizeGiB))) +
		xmlField("description", sn.Description) + xmlField("encrypted", strconv.FormatBool(sn.Encrypted)) +
		tagsXML(sn.Tags)
	if sn.KMSKey != "" {
		body += xmlField("kmsKeyId", sn.KMSKey)
	}
	if item {
		return "<item>" + body + "</item>"
	}
	return body
}

func tagsXML(tags map[string]string) string {
	if len(tags) == 0 {
		return ""
	}
	keys := make([]string, 0, len(tags))
	for k := range tags {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	b.WriteString("<tagSet>")
	for _, k := range keys {
		b.WriteString("<item>" + xmlField("key", k) + xmlField("value", tags[k]) + "</item>")
	}
	b.WriteString("</tagSet>")
	return b.String()
}

func xmlField(name, value string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(value))
	return "<" + name + ">" + b.String() + "</" + name + ">"
}

func requestID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// writeError writes EC2's error document.
func writeError(w http.ResponseWriter, e *apiError) {
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.WriteHeader(e.status)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"+`<Response><Errors><Error>%s%s</Error></Errors>%s</Response>`,
		xmlField("Code", e.code), xmlField("Message", e.msg), xmlField("RequestID", requestID()))
}
