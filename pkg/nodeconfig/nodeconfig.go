// Package nodeconfig reads the node's cgpol configuration, a small YAML file
// (/etc/cgpol/config.yaml): the policy of containers that carry no cgpol
// annotation, and the containers exempt from it. The OCI hook and the NRI
// plugin both decide a container's policy with Config.PolicyFor.
package nodeconfig

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/cgpol/cgpol/pkg/policy"
)

// DefaultPath is where the node configuration lives unless told otherwise.
const DefaultPath = "/etc/cgpol/config.yaml"

// Config is the node configuration.
type Config struct {
	// BPFFS is the bpffs directory of cgpol's pins; empty means the default.
	BPFFS string `json:"bpffs,omitempty"`
	// DefaultPolicy is the policy of containers with no cgpol.io/
	// annotation, written as annotations without the prefix, e.g.
	// {"allow-ports": ""} to deny all. Absent, they stay unrestricted.
	DefaultPolicy map[string]string `json:"defaultPolicy,omitempty"`
	// Exempt lists containers that DefaultPolicy never applies to. Their
	// own annotations still apply.
	Exempt []Match `json:"exempt,omitempty"`

	defaultPolicy *policy.Policy
}

// Match selects containers by shell glob (path.Match) on each field given;
// a container matches if every field given matches.
type Match struct {
	Name      string `json:"name,omitempty"`      // container name
	Pod       string `json:"pod,omitempty"`       // pod name
	Namespace string `json:"namespace,omitempty"` // pod namespace
	ID        string `json:"id,omitempty"`        // container id
}

// Container identifies a container for the default policy. Fields that the
// caller does not know are empty and match only "*".
type Container struct {
	ID, Name, Pod, Namespace string
}

func (c Container) String() string {
	switch {
	case c.Namespace != "" || c.Pod != "":
		return fmt.Sprintf("%s/%s/%s", c.Namespace, c.Pod, c.Name)
	case c.Name != "":
		return c.Name
	}
	return c.ID
}

// Load reads a configuration file. A missing file is the default
// configuration: unannotated containers stay unrestricted.
func Load(file string) (*Config, error) {
	data, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		return &Config{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read cgpol config: %w", err)
	}
	c, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("cgpol config %s: %w", file, err)
	}
	return c, nil
}

// Parse parses and validates a configuration. Unknown fields are errors.
func Parse(data []byte) (*Config, error) {
	var c Config
	if err := yaml.UnmarshalStrict(data, &c); err != nil {
		return nil, oneLine(err)
	}
	if c.DefaultPolicy != nil {
		if len(c.DefaultPolicy) == 0 {
			return nil, errors.New("defaultPolicy is empty; remove it to leave unannotated containers unrestricted")
		}
		ann := map[string]string{}
		for k, v := range c.DefaultPolicy {
			if strings.HasPrefix(k, policy.Prefix) {
				return nil, fmt.Errorf("defaultPolicy key %q: write it without the %s prefix", k, policy.Prefix)
			}
			ann[policy.Prefix+k] = v
		}
		p, _, err := policy.FromAnnotations(ann)
		if err != nil {
			return nil, fmt.Errorf("defaultPolicy: %w", err)
		}
		c.defaultPolicy = &p
	}
	for i, m := range c.Exempt {
		if m == (Match{}) {
			return nil, fmt.Errorf("exempt[%d] matches every container; give a name, pod, namespace or id", i)
		}
		for _, glob := range []string{m.Name, m.Pod, m.Namespace, m.ID} {
			if _, err := path.Match(glob, ""); err != nil {
				return nil, fmt.Errorf("exempt[%d]: bad pattern %q: %w", i, glob, err)
			}
		}
	}
	return &c, nil
}

// Source says where a container's policy came from.
type Source string

const (
	FromAnnotations Source = "annotations"    // the container's cgpol.io/ annotations
	FromDefault     Source = "default policy" // the node's defaultPolicy
	Unrestricted    Source = "unrestricted"   // no annotation and no default, or exempt
)

// PolicyFor decides a container's policy from its cgpol annotations, already
// scoped to it (policy.ForContainer), and the node configuration. restrict
// is false when the container is left alone. An invalid annotation is an
// error, whatever the configuration says.
func (c *Config) PolicyFor(annotations map[string]string, ctr Container) (p policy.Policy, source Source, err error) {
	p, found, err := policy.FromAnnotations(annotations)
	if err != nil {
		return policy.Policy{}, "", err
	}
	if found {
		return p, FromAnnotations, nil
	}
	if c.defaultPolicy == nil || c.exempt(ctr) {
		return policy.Policy{}, Unrestricted, nil
	}
	return *c.defaultPolicy, FromDefault, nil
}

func (c *Config) exempt(ctr Container) bool {
	for _, m := range c.Exempt {
		if glob(m.Name, ctr.Name) && glob(m.Pod, ctr.Pod) && glob(m.Namespace, ctr.Namespace) && glob(m.ID, ctr.ID) {
			return true
		}
	}
	return false
}

// glob matches a pattern; an empty pattern matches anything.
func glob(pattern, value string) bool {
	if pattern == "" {
		return true
	}
	ok, _ := path.Match(pattern, value)
	return ok
}

func oneLine(err error) error {
	return errors.New(strings.Join(strings.Fields(err.Error()), " "))
}
