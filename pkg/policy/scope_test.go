package policy

import (
	"maps"
	"strings"
	"testing"
)

func TestForContainer(t *testing.T) {
	pod := map[string]string{
		"cgpol.io/allow-ports":                "443",
		"allow-ports.cgpol.io/container.db":   "tcp:5432",
		"allow-ports.cgpol.io/container.side": "",
		"io.kubernetes.pod/name":              "web",
	}
	for ctr, want := range map[string]map[string]string{
		"web":  {"cgpol.io/allow-ports": "443"},
		"db":   {"cgpol.io/allow-ports": "tcp:5432"},
		"side": {"cgpol.io/allow-ports": ""},
	} {
		got, err := ForContainer(pod, ctr)
		if err != nil || !maps.Equal(got, want) {
			t.Errorf("ForContainer(%s) = %v, %v; want %v", ctr, got, err, want)
		}
	}
	// Only a scoped key: the other containers get nothing.
	got, err := ForContainer(map[string]string{"allow-ports.cgpol.io/container.db": "5432"}, "web")
	if err != nil || len(got) != 0 {
		t.Errorf("unscoped container got %v, %v", got, err)
	}
}

func TestForContainerErrors(t *testing.T) {
	for key, want := range map[string]string{
		"allow-port.cgpol.io/container.web": "unknown cgpol annotation cgpol.io/allow-port",
		"allow-ports.cgpol.io/pod":          "must be <key>.cgpol.io/container.<container-name>",
		"allow-ports.cgpol.io/container.":   "must be",
	} {
		_, err := ForContainer(map[string]string{key: "80"}, "web")
		if err == nil || !strings.Contains(err.Error(), want) || !strings.HasPrefix(err.Error(), "invalid annotation "+key) {
			t.Errorf("%s: %v, want %q", key, err, want)
		}
	}
}

// A bad scoped value names the key the user wrote; a bad value scoped to
// another container is that container's problem.
func TestForContainerNamesTheScopedKey(t *testing.T) {
	pod := map[string]string{"allow-ports.cgpol.io/container.web": "80,x"}
	_, err := ForContainer(pod, "web")
	want := `invalid annotation allow-ports.cgpol.io/container.web="80,x": item 2 "x": "x" is not a port number; want 1-65535`
	if err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
	if got, err := ForContainer(pod, "db"); err != nil || len(got) != 0 {
		t.Errorf("another container: %v, %v", got, err)
	}
}

func TestScopedKeyIsAValidKubernetesKey(t *testing.T) {
	key := ScopedKey(KeyAllowPorts, strings.Repeat("a", 53))
	prefix, name, _ := strings.Cut(key, "/")
	if len(name) > 63 || len(prefix) > 253 {
		t.Errorf("%s is too long for a Kubernetes annotation key", key)
	}
	if got, _ := ForContainer(map[string]string{ScopedKey(KeyAllowPorts, "web"): "80"}, "web"); got[KeyAllowPorts] != "80" {
		t.Errorf("ScopedKey and ForContainer disagree: %v", got)
	}
}
