// Package backup makes and restores one archive of everything a broker's
// rebuild needs: the CA key and certificate, the server's and clients'
// certificates and keys, the password file, the ACL, mosqprov's
// configuration files, broker.yaml and state.json (and, when asked, the
// broker's persistence database). The archive is a tar stream with a
// manifest first, encrypted with age (filippo.io/age) to a passphrase or to
// age recipients; restore checks all of it before it writes anything.
package backup

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/mosqprov/mosqprov/pkg/bridge"
	"github.com/mosqprov/mosqprov/pkg/layout"
	"github.com/mosqprov/mosqprov/pkg/state"
	"github.com/mosqprov/mosqprov/pkg/system"
)

// Format is the manifest's version; restore refuses any other.
const Format = 1

// Database is where Debian's mosquitto.conf keeps the broker's persistence
// (persistence_location /var/lib/mosquitto/).
const Database = "/var/lib/mosquitto/mosquitto.db"

// Caps: a broker's files are a few hundred KiB; the database is the only
// large member. An archive over MaxArchive is refused unread.
const (
	MaxArchive = 256 << 20
	maxEntries = 10000
	manifestIn = "MANIFEST.json"
)

// trees are folders backed up whole (bridges' TLS files included); files are single files; stateful ones
// come from state.json (every file the last apply wrote, whatever step wrote
// it: bridges, CRLs and drop-ins included).
var (
	trees = []string{layout.StateDir, layout.BrokerCertDir, bridge.Dir}
	files = []string{layout.PasswordFile, layout.ACLFile, layout.DropIn}
	// confGlobs are the files mosqprov owns in folders it shares with others.
	confGlobs = map[string]string{
		layout.ConfDir: "mosqprov",
		"/etc/systemd/system/mosquitto.service.d": "mosqprov",
	}
)

// allowed says whether a restore may write path: only under the folders
// mosqprov manages, so a crafted archive can't reach anything else.
func allowed(p string) bool {
	if p != path.Clean(p) || !path.IsAbs(p) {
		return false
	}
	for _, dir := range []string{layout.StateDir, layout.MosquittoDir, "/etc/systemd/system/mosquitto.service.d"} {
		if p == dir || strings.HasPrefix(p, dir+"/") {
			return true
		}
	}
	return p == Database
}

// Entry is one member of the archive.
type Entry struct {
	Path   string      `json:"path"`
	Dir    bool        `json:"dir,omitempty"`
	Mode   fs.FileMode `json:"mode"`
	User   string      `json:"user"`
	Group  string      `json:"group"`
	Size   int64       `json:"size,omitempty"`
	SHA256 string      `json:"sha256,omitempty"`
}

// Manifest lists every member with its owner, mode and digest.
type Manifest struct {
	Format  int     `json:"format"`
	Created string  `json:"created"`
	Host    string  `json:"host,omitempty"`
	Entries []Entry `json:"entries"`
}

// Archive is a manifest with its members' content, checked.
type Archive struct {
	Manifest Manifest
	Data     map[string][]byte
}

// Collect reads every file a rebuild needs from sys. A symlink among them
// is an error naming it: mosqprov never follows its managed files.
func Collect(sys system.System, withDB bool) (*Archive, error) {
	owners, err := newOwners(sys)
	if err != nil {
		return nil, err
	}
	a := &Archive{Data: map[string][]byte{}}
	a.Manifest.Format = Format
	a.Manifest.Created = sys.Now().UTC().Format(time.RFC3339)
	if h, err := sys.Hostname(); err == nil {
		a.Manifest.Host = h
	}
	seen := map[string]bool{}
	var add func(p string, mustExist bool) error
	add = func(p string, mustExist bool) error {
		if seen[p] {
			return nil
		}
		info, err := sys.Stat(p)
		if errors.Is(err, fs.ErrNotExist) && !mustExist {
			return nil
		}
		if err != nil {
			return fmt.Errorf("backup: %w", err)
		}
		if info.Symlink {
			return fmt.Errorf("backup: %s is a symlink: mosqprov backs up only the files it manages, never through a link", p)
		}
		if len(seen) >= maxEntries {
			return fmt.Errorf("backup: more than %d files under %s", maxEntries, layout.StateDir)
		}
		seen[p] = true
		user, group, err := owners.names(p, info)
		if err != nil {
			return err
		}
		e := Entry{Path: p, Dir: info.IsDir, Mode: info.Mode.Perm(), User: user, Group: group}
		if info.IsDir {
			a.Manifest.Entries = append(a.Manifest.Entries, e)
			list, err := sys.ReadDir(p)
			if err != nil {
				return fmt.Errorf("backup: %w", err)
			}
			for _, d := range list {
				if strings.HasPrefix(d.Name(), ".") && strings.Contains(d.Name(), ".tmp") {
					continue // a killed writer's temp file, swept on the next write
				}
				if err := add(path.Join(p, d.Name()), true); err != nil {
					return err
				}
			}
			return nil
		}
		if info.Size > MaxArchive {
			return fmt.Errorf("backup: %s is %d bytes, over the archive's %d-byte cap", p, info.Size, MaxArchive)
		}
		data, err := sys.ReadFile(p)
		if err != nil {
			return fmt.Errorf("backup: %w", err)
		}
		e.Size = int64(len(data))
		e.SHA256 = digest(data)
		a.Manifest.Entries = append(a.Manifest.Entries, e)
		a.Data[p] = data
		return nil
	}
	for _, t := range trees {
		if err := add(t, false); err != nil {
			return nil, err
		}
	}
	for _, f := range files {
		if err := add(f, false); err != nil {
			return nil, err
		}
	}
	for dir, prefix := range confGlobs {
		list, err := sys.ReadDir(dir)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("backup: %w", err)
		}
		for _, d := range list {
			if strings.HasPrefix(d.Name(), prefix) && strings.HasSuffix(d.Name(), ".conf") {
				if err := add(path.Join(dir, d.Name()), true); err != nil {
					return nil, err
				}
			}
		}
	}
	if st, err := state.Load(sys); err == nil && st != nil {
		for p := range st.Files {
			if allowed(p) {
				if err := add(p, false); err != nil {
					return nil, err
				}
			}
		}
	}
	if withDB {
		if err := add(Database, true); err != nil {
			return nil, err
		}
	}
	if len(a.Data) == 0 {
		return nil, fmt.Errorf("backup: nothing to back up under %s: no broker set up by mosqprov here", sys.Root())
	}
	sort.Slice(a.Manifest.Entries, func(i, j int) bool { return a.Manifest.Entries[i].Path < a.Manifest.Entries[j].Path })
	return a, nil
}

func digest(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// owners turns the uids and gids of the broker's files into names: a new SD
// card's mosquitto account may have another number.
type owners struct {
	sys     system.System
	brokerU int
	brokerG int
}

func newOwners(sys system.System) (*owners, error) {
	o := &owners{sys: sys, brokerU: -1, brokerG: -1}
	if acct, err := sys.LookupUser(layout.BrokerUser); err == nil {
		o.brokerU = acct.UID
	}
	if gid, err := sys.LookupGroup(layout.BrokerUser); err == nil {
		o.brokerG = gid
	}
	return o, nil
}

func (o *owners) names(p string, info system.FileInfo) (string, string, error) {
	name := func(id, broker int) string {
		switch id {
		case 0:
			return "root"
		case broker:
			return layout.BrokerUser
		}
		return ""
	}
	user, group := name(info.UID, o.brokerU), name(info.GID, o.brokerG)
	if user == "" || group == "" {
		return "", "", fmt.Errorf("backup: %s is owned by uid %d gid %d, neither root nor %s: fix its owner (sudo mosqprov apply) and back up again", p, info.UID, info.GID, layout.BrokerUser)
	}
	return user, group, nil
}

// Marshal writes the archive as a tar stream: the manifest first, then every
// member under its target path without the leading slash, all dated by the
// manifest so one broker's state gives the same bytes.
func (a *Archive) Marshal(w io.Writer) error {
	manifest, err := json.MarshalIndent(a.Manifest, "", "  ")
	if err != nil {
		return err
	}
	when, _ := time.Parse(time.RFC3339, a.Manifest.Created)
	tw := tar.NewWriter(w)
	put := func(name string, mode fs.FileMode, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: int64(mode), Size: int64(len(data)), ModTime: when, Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	if err := put(manifestIn, 0o600, manifest); err != nil {
		return err
	}
	for _, e := range a.Manifest.Entries {
		if e.Dir {
			continue
		}
		if err := put(strings.TrimPrefix(e.Path, "/"), e.Mode, a.Data[e.Path]); err != nil {
			return err
		}
	}
	return tw.Close()
}

// Unmarshal reads a decrypted archive and checks all of it: the manifest's
// format, every entry's path (inside the folders mosqprov manages), owner
// and mode, and every member's size and SHA-256, each member exactly once.
func Unmarshal(r io.Reader) (*Archive, error) {
	tr := tar.NewReader(io.LimitReader(r, MaxArchive+1))
	hdr, err := tr.Next()
	if err != nil || hdr.Name != manifestIn {
		return nil, fmt.Errorf("restore: not a mosqprov backup: it does not start with %s", manifestIn)
	}
	raw, err := io.ReadAll(io.LimitReader(tr, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("restore: read %s: %w", manifestIn, err)
	}
	a := &Archive{Data: map[string][]byte{}}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&a.Manifest); err != nil {
		return nil, fmt.Errorf("restore: %s: %w", manifestIn, err)
	}
	if a.Manifest.Format != Format {
		return nil, fmt.Errorf("restore: backup format %d, this mosqprov reads format %d", a.Manifest.Format, Format)
	}
	if len(a.Manifest.Entries) > maxEntries {
		return nil, fmt.Errorf("restore: %d entries, over the cap of %d", len(a.Manifest.Entries), maxEntries)
	}
	want := map[string]Entry{}
	for _, e := range a.Manifest.Entries {
		if err := e.check(); err != nil {
			return nil, err
		}
		if _, dup := want[e.Path]; dup {
			return nil, fmt.Errorf("restore: %s is listed twice", e.Path)
		}
		want[e.Path] = e
	}
	total := int64(0)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("restore: the archive is damaged or truncated: %w", err)
		}
		p := "/" + hdr.Name
		e, ok := want[p]
		if !ok || e.Dir || hdr.Typeflag != tar.TypeReg {
			return nil, fmt.Errorf("restore: member %q is not in the manifest as a file", hdr.Name)
		}
		if _, dup := a.Data[p]; dup {
			return nil, fmt.Errorf("restore: member %q appears twice", hdr.Name)
		}
		if total += e.Size; total > MaxArchive {
			return nil, fmt.Errorf("restore: the members add up to more than %d bytes", MaxArchive)
		}
		data, err := io.ReadAll(io.LimitReader(tr, e.Size+1))
		if err != nil {
			return nil, fmt.Errorf("restore: the archive is damaged or truncated: %s: %w", p, err)
		}
		if int64(len(data)) != e.Size || digest(data) != e.SHA256 {
			return nil, fmt.Errorf("restore: %s does not match its manifest entry (size or SHA-256)", p)
		}
		a.Data[p] = data
	}
	for p, e := range want {
		if _, ok := a.Data[p]; !ok && !e.Dir {
			return nil, fmt.Errorf("restore: %s is in the manifest but not in the archive", p)
		}
	}
	return a, nil
}

func (e Entry) check() error {
	if !allowed(e.Path) {
		return fmt.Errorf("restore: %q is outside the folders mosqprov manages; refusing the archive", e.Path)
	}
	if e.Mode&^fs.ModePerm != 0 || e.Mode&0o7000 != 0 {
		return fmt.Errorf("restore: %s has mode %v: only permission bits are restored", e.Path, e.Mode)
	}
	for _, who := range []string{e.User, e.Group} {
		if who != "root" && who != layout.BrokerUser {
			return fmt.Errorf("restore: %s is owned by %q: only root and %s own mosqprov's files", e.Path, who, layout.BrokerUser)
		}
	}
	if !e.Dir && (e.Size < 0 || len(e.SHA256) != 64) {
		return fmt.Errorf("restore: %s has no size or SHA-256 in the manifest", e.Path)
	}
	return nil
}

// Conflicts lists the files the archive would replace with other content.
func (a *Archive) Conflicts(sys system.System) ([]string, error) {
	var differ []string
	for _, e := range a.Manifest.Entries {
		if e.Dir {
			continue
		}
		data, err := sys.ReadFile(e.Path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("restore: %w", err)
		}
		if digest(data) != e.SHA256 {
			differ = append(differ, e.Path)
		}
	}
	return differ, nil
}

// HasDatabase reports whether the archive holds the broker's database.
func (a *Archive) HasDatabase() bool {
	_, ok := a.Data[Database]
	return ok
}

// Restore writes every member with its owner and mode through sys (atomic,
// never through a symlink, only when it differs). Where the broker's account
// doesn't exist yet (mosquitto not installed), its files are written root's,
// with the same mode, and a warning: apply gives them back after the install.
func (a *Archive) Restore(sys system.System) (system.Result, error) {
	var res system.Result
	_, brokerMissing := sys.LookupUser(layout.BrokerUser)
	attr := func(e Entry) system.Attr {
		at := system.Attr{Mode: e.Mode, User: e.User, Group: e.Group}
		if brokerMissing != nil && (e.User == layout.BrokerUser || e.Group == layout.BrokerUser) {
			at.User, at.Group = "root", "root"
		}
		return at
	}
	for _, e := range a.Manifest.Entries {
		if !e.Dir {
			continue
		}
		act, err := sys.EnsureDir(e.Path, attr(e))
		if err != nil {
			return res, fmt.Errorf("restore: %w", err)
		}
		res.Add(system.NewChange("folder", e.Path, act, ""))
	}
	for _, e := range a.Manifest.Entries {
		if e.Dir {
			continue
		}
		if dir := path.Dir(e.Path); !layout.Exists(sys, dir) {
			if _, err := sys.EnsureDir(dir, system.Attr{Mode: 0o755, User: "root", Group: "root"}); err != nil {
				return res, fmt.Errorf("restore: %w", err)
			}
		}
		act, err := sys.WriteFile(e.Path, a.Data[e.Path], attr(e))
		if err != nil {
			return res, fmt.Errorf("restore: %w", err)
		}
		res.Add(system.NewChange("restored file", e.Path, act, ""))
		if act.Changed() {
			res.Needs(system.NeedRestart)
		}
	}
	if brokerMissing != nil {
		res.Warn("user %s does not exist (is mosquitto installed?): its files were restored owned by root; `mosqprov apply` after the install gives them back", layout.BrokerUser)
	}
	return res, nil
}
