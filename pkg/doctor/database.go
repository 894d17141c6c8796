package doctor

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"github.com/mosqprov/mosqprov/pkg/conf"
	"github.com/mosqprov/mosqprov/pkg/system"
)

// IDDatabaseCorrupt: the broker's persistence database can't be read back.
const IDDatabaseCorrupt = "database-corrupt"

// The persistence database as mosquitto 2.0 writes it (persist.h, checked
// with 2.0.11): 15 magic bytes, a 4-byte CRC (written 0), a big-endian
// 4-byte format version (6 since 2.0), then chunks of a big-endian 4-byte
// type, a 4-byte length and that many bytes, up to the end of the file.
var dbMagic = []byte("\x00\xb5\x00mosquitto db")

const (
	dbHeader     = 15 + 4 + 4
	dbVersion6   = 6
	dbDefaultDir = "/var/lib/mosquitto/"
	dbDefaultFn  = "mosquitto.db"
	// maxDatabase bounds what doctor reads: past it the file is only
	// checked by its header.
	maxDatabase = 256 << 20
)

// DatabaseProblem says what is wrong with a persistence database's bytes,
// or "" when mosquitto can read it back. What the real 2.0.11 does with
// each (mosquitto issue 2639: zero-filled files after a power cut):
//   - empty: starts, warning "Persistence file is empty";
//   - zero-filled or another header: refuses to start, "Unable to restore
//     persistent database. Unrecognised file format.";
//   - a chunk cut short: refuses to start, "Couldn't open database".
func DatabaseProblem(data []byte) string {
	if len(data) == 0 {
		return ""
	}
	if len(bytes.Trim(data, "\x00")) == 0 {
		return fmt.Sprintf("it is zero-filled (%d bytes of zeros): a write lost to a power cut", len(data))
	}
	if len(data) < dbHeader || !bytes.Equal(data[:len(dbMagic)], dbMagic) {
		return "it does not start with mosquitto's database header: not a mosquitto database, or overwritten"
	}
	version := binary.BigEndian.Uint32(data[19:23])
	if version != dbVersion6 {
		return "" // another broker version's format: only its header is checked
	}
	for off := dbHeader; off < len(data); {
		if len(data)-off < 8 {
			return fmt.Sprintf("it is truncated: %d stray bytes at offset %d where a record should start", len(data)-off, off)
		}
		length := int(binary.BigEndian.Uint32(data[off+4 : off+8]))
		if length > len(data)-off-8 {
			return fmt.Sprintf("it is truncated: the record at offset %d needs %d bytes, the file ends after %d", off, length, len(data)-off-8)
		}
		off += 8 + length
	}
	return ""
}

// DatabasePath is where the broker's configuration puts its database.
func DatabasePath(location, file string) string {
	if location == "" {
		location = dbDefaultDir
	}
	if file == "" {
		file = dbDefaultFn
	}
	return path.Join(location, file)
}

// configuredDatabase is the database the broker's configuration uses, ""
// when persistence is off.
func configuredDatabase(setting func(string) (conf.Setting, bool)) string {
	if s, ok := setting("persistence"); !ok || s.Value != "true" {
		return ""
	}
	loc, _ := setting("persistence_location")
	file, _ := setting("persistence_file")
	return DatabasePath(loc.Value, file.Value)
}

func (c *Checker) checkDatabase() {
	db := configuredDatabase(c.setting)
	if db == "" {
		return
	}
	problem, err := ReadDatabaseProblem(c.Sys, db)
	if err != nil || problem == "" {
		return
	}
	c.add(Finding{ID: IDDatabaseCorrupt, Severity: Error, Subject: db,
		Problem: "the broker's persistence database is damaged: " + problem,
		Why:     "mosquitto refuses to start with it (\"Unable to restore persistent database\" or \"Couldn't open database\"); retained messages and persistent sessions in it are lost",
		Fix:     DatabaseFix(db)})
}

// ReadDatabaseProblem reads db through sys and says what is wrong with it
// ("" when nothing is, or there is no file).
func ReadDatabaseProblem(sys system.System, db string) (string, error) {
	info, err := sys.Stat(db)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	if info.Size > maxDatabase {
		return "", nil
	}
	data, err := sys.ReadFile(db)
	if err != nil {
		return "", err
	}
	return DatabaseProblem(data), nil
}

// DatabaseWarning is what verify says when the broker it could not reach
// has a damaged database ("" when it has none): the likely reason it is down.
func DatabaseWarning(sys system.System, mainConf string) string {
	b, err := conf.ReadBroker(sys, mainConf)
	if err != nil {
		return ""
	}
	c := &Checker{cfg: b}
	db := configuredDatabase(c.setting)
	if db == "" {
		return ""
	}
	problem, err := ReadDatabaseProblem(sys, db)
	if err != nil || problem == "" {
		return ""
	}
	return fmt.Sprintf("the broker's database %s is damaged (%s): mosquitto refuses to start with it; `sudo mosqprov doctor` says how to recover", db, problem)
}

// DatabaseFix moves the damaged database aside with the broker stopped (it
// writes its in-memory state over the file when it stops), then starts it
// with an empty one.
func DatabaseFix(db string) string {
	return strings.Join([]string{
		"sudo systemctl stop mosquitto",
		"sudo mv " + db + " " + db + ".damaged",
		"sudo systemctl start mosquitto",
	}, " && ") + " (or bring back a backup made with --with-db: sudo mosqprov restore --force FILE)"
}
