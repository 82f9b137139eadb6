package ec2fake

import (
	"maps"
	"slices"
	"strconv"
)

// Address is an Elastic IP as the fake holds it.
type Address struct {
	PublicIP, AllocationID, Instance, Association string
}

// AddInstance seeds an instance and returns its id.
func (s *Server) AddInstance(reg string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := s.id("i")
	r := s.region(reg)
	if r.instances == nil {
		r.instances = map[string]bool{}
	}
	r.instances[id] = true
	return id
}

// AddAddress allocates ip in reg, associated with instance ("" none).
func (s *Server) AddAddress(reg, ip, instance string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.region(reg)
	if r.addresses == nil {
		r.addresses = map[string]*Address{}
	}
	r.addresses[ip] = &Address{PublicIP: ip, AllocationID: s.id("eipalloc"), Instance: instance}
}

// AddressOf returns the instance ip is associated with in reg.
func (s *Server) AddressOf(reg, ip string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a := s.region(reg).addresses[ip]; a != nil {
		return a.Instance
	}
	return ""
}

func (s *Server) describeAddresses(r *region, f formValues) (string, *apiError) {
	want := f.list("PublicIp")
	body := "<addressesSet>"
	for _, ip := range slices.Sorted(maps.Keys(r.addresses)) {
		a := r.addresses[ip]
		if len(want) > 0 && !slices.Contains(want, ip) || !matches(filters(f), map[string]string{"public-ip": ip}, nil) {
			continue
		}
		body += "<item>" + xmlField("publicIp", a.PublicIP) + xmlField("allocationId", a.AllocationID) + xmlField("domain", "vpc")
		if a.Instance != "" {
			body += xmlField("instanceId", a.Instance) + xmlField("associationId", a.Association)
		}
		body += "</item>"
	}
	return body + "</addressesSet>", nil
}

// associateAddress moves an address (by allocation id or public IP) to an
// instance; one associated elsewhere moves only with AllowReassociation.
func (s *Server) associateAddress(r *region, f formValues) (string, *apiError) {
	var a *Address
	for _, x := range r.addresses {
		if x.AllocationID == f.get("AllocationId") || f.get("AllocationId") == "" && x.PublicIP == f.get("PublicIp") {
			a = x
		}
	}
	inst := f.get("InstanceId")
	switch {
	case a == nil:
		return "", notFound("Address", f.get("AllocationId")+f.get("PublicIp"))
	case !r.instances[inst]:
		return "", notFound("InstanceID", inst)
	case a.Instance != "" && a.Instance != inst && f.get("AllowReassociation") != "true":
		return "", &apiError{400, "Resource.AlreadyAssociated", "the address " + a.PublicIP + " is associated with " + a.Instance}
	}
	a.Instance, a.Association = inst, s.id("eipassoc")
	return xmlField("return", strconv.FormatBool(true)) + xmlField("associationId", a.Association), nil
}
