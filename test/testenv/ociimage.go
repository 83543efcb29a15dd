package testenv

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// OCI media types, from the OCI image spec.
const (
	mediaTypeIndex    = "application/vnd.oci.image.index.v1+json"
	mediaTypeManifest = "application/vnd.oci.image.manifest.v1+json"
	mediaTypeConfig   = "application/vnd.oci.image.config.v1+json"
	mediaTypeLayer    = "application/vnd.oci.image.layer.v1.tar"
)

type ociDescriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Platform    *ociPlatform      `json:"platform,omitempty"`
}

type ociPlatform struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
}

// OCIArchive writes an OCI image archive that holds one image, under each
// of names (full references, e.g. "registry.k8s.io/pause:3.10.2"): the
// layer is the tar file rootfsTar (RootfsTar), and cmd is the image's
// command. ctr images import keeps the names. No registry is involved.
func OCIArchive(t testing.TB, rootfsTar string, cmd []string, names ...string) string {
	t.Helper()
	var blobs []blob
	layer, err := fileBlob(rootfsTar, mediaTypeLayer)
	if err != nil {
		t.Fatal(err)
	}
	config := jsonBlob(t, mediaTypeConfig, map[string]any{
		"architecture": runtime.GOARCH,
		"os":           "linux",
		"config":       map[string]any{"Cmd": cmd, "Env": []string{"PATH=/bin"}},
		"rootfs":       map[string]any{"type": "layers", "diff_ids": []string{layer.desc.Digest}},
	})
	manifest := jsonBlob(t, mediaTypeManifest, map[string]any{
		"schemaVersion": 2,
		"mediaType":     mediaTypeManifest,
		"config":        config.desc,
		"layers":        []ociDescriptor{layer.desc},
	})
	blobs = append(blobs, layer, config, manifest)
	var manifests []ociDescriptor
	for _, name := range names {
		d := manifest.desc
		d.Platform = &ociPlatform{Architecture: runtime.GOARCH, OS: "linux"}
		d.Annotations = map[string]string{
			"io.containerd.image.name":          name,
			"org.opencontainers.image.ref.name": name,
		}
		manifests = append(manifests, d)
	}
	index, err := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": mediaTypeIndex, "manifests": manifests})
	if err != nil {
		t.Fatal(err)
	}

	file := filepath.Join(t.TempDir(), "image.tar")
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	put := func(name string, size int64, r io.Reader) {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: size, Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(tw, r); err != nil {
			t.Fatal(err)
		}
	}
	layout := []byte(`{"imageLayoutVersion":"1.0.0"}`)
	put("oci-layout", int64(len(layout)), bytes.NewReader(layout))
	put("index.json", int64(len(index)), bytes.NewReader(index))
	for _, b := range blobs {
		r, err := b.open()
		if err != nil {
			t.Fatal(err)
		}
		put("blobs/sha256/"+b.hex, b.desc.Size, r)
		r.Close()
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return file
}

// blob is one content-addressed file of the archive.
type blob struct {
	desc ociDescriptor
	hex  string
	open func() (io.ReadCloser, error)
}

func fileBlob(path, mediaType string) (blob, error) {
	f, err := os.Open(path)
	if err != nil {
		return blob{}, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return blob{}, err
	}
	sum := hex.EncodeToString(h.Sum(nil))
	return blob{
		desc: ociDescriptor{MediaType: mediaType, Digest: "sha256:" + sum, Size: n},
		hex:  sum,
		open: func() (io.ReadCloser, error) { return os.Open(path) },
	}, nil
}

func jsonBlob(t testing.TB, mediaType string, v any) blob {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return blob{
		desc: ociDescriptor{MediaType: mediaType, Digest: fmt.Sprintf("sha256:%x", sum), Size: int64(len(data))},
		hex:  hex.EncodeToString(sum[:]),
		open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil },
	}
}
