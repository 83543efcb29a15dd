package policy

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// ScopeDomain is the domain of container-scoped keys. Following the NRI
// convention (<key>/container.<name>), the container-scoped form of
// cgpol.io/allow-ports for container "web" is
//
//	allow-ports.cgpol.io/container.web
//
// which is a valid Kubernetes annotation key for container names of up to 53
// characters. It overrides the pod-wide cgpol.io/allow-ports for that
// container only.
const ScopeDomain = "cgpol.io"

// containerScope starts the name part of a container-scoped key.
const containerScope = "container."

// ScopedKey returns the container-scoped form of a key, e.g.
// ScopedKey(KeyAllowPorts, "web") = "allow-ports.cgpol.io/container.web".
func ScopedKey(key, container string) string {
	return strings.TrimPrefix(key, Prefix) + "." + ScopeDomain + "/" + containerScope + container
}

// ForContainer returns the cgpol annotations that apply to one container of
// a pod: the pod-wide cgpol.io/ keys, overridden key by key by the keys
// scoped to this container. Keys scoped to other containers are ignored. A
// scoped key that is malformed or names an unknown policy key is an error,
// so that a typo never leaves a container unrestricted.
func ForContainer(annotations map[string]string, container string) (map[string]string, error) {
	out := map[string]string{}
	for key, value := range annotations {
		if strings.HasPrefix(key, Prefix) {
			if _, overridden := out[key]; !overridden {
				out[key] = value
			}
			continue
		}
		prefix, name, ok := strings.Cut(key, "/")
		short, isScoped := strings.CutSuffix(prefix, "."+ScopeDomain)
		if !ok || !isScoped {
			continue
		}
		target, ok := strings.CutPrefix(name, containerScope)
		if !ok || target == "" {
			return nil, &AnnotationError{Key: key, Value: value,
				Err: fmt.Errorf("a scoped cgpol key must be <key>.%s/%s<container-name>", ScopeDomain, containerScope)}
		}
		full := Prefix + short
		if !slices.Contains(Keys, full) {
			return nil, &AnnotationError{Key: key, Value: value,
				Err: fmt.Errorf("unknown cgpol annotation %s; known keys: %s", full, strings.Join(Keys, ", "))}
		}
		if target == container {
			// Check the value here, so that an error names the key the
			// user wrote rather than the pod-wide key it stands for.
			if _, _, err := FromAnnotations(map[string]string{full: value}); err != nil {
				var ae *AnnotationError
				if errors.As(err, &ae) {
					err = &AnnotationError{Key: key, Value: value, Err: ae.Err}
				}
				return nil, err
			}
			out[full] = value
		}
	}
	return out, nil
}
