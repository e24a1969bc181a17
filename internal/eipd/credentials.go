package eipd

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"syscall"
)

// Credentials are the API's access keys, from a file only root may read.
type Credentials struct {
	keys map[string]string
}

type credentialsFile struct {
	Keys []struct {
		AccessKeyID     string `json:"access_key_id"`
		AccessKeySecret string `json:"access_key_secret"`
	} `json:"keys"`
}

// LoadCredentials reads the credentials file and refuses one that anybody but root
// could read or change.
func LoadCredentials(path string) (*Credentials, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("credentials: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("credentials %s: mode %v lets others read it; chmod 600 it", path, st.Mode().Perm())
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok && sys.Uid != 0 {
		return nil, fmt.Errorf("credentials %s: owned by uid %d, must be owned by root", path, sys.Uid)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("credentials: %w", err)
	}
	var f credentialsFile
	dec := json.NewDecoder(bytesReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("credentials %s: %w", path, err)
	}
	c := &Credentials{keys: map[string]string{}}
	for i, k := range f.Keys {
		if k.AccessKeyID == "" || len(k.AccessKeySecret) < 16 {
			return nil, fmt.Errorf("credentials %s: key %d needs an access_key_id and a secret of 16 characters or more", path, i)
		}
		c.keys[k.AccessKeyID] = k.AccessKeySecret
	}
	if len(c.keys) == 0 {
		return nil, fmt.Errorf("credentials %s: no keys", path)
	}
	return c, nil
}

// Secret finds a key's secret. The ID lookup is a map; the signature comparison that
// matters for timing is constant-time in the verifier.
func (c *Credentials) Secret(id string) (string, bool) {
	for known, secret := range c.keys {
		if subtle.ConstantTimeCompare([]byte(known), []byte(id)) == 1 {
			return secret, true
		}
	}
	return "", false
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }
