package backup

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"filippo.io/age"
)

// scryptWorkFactor is log2 of scrypt's N for passphrase archives: 2^16 takes
// 64 MiB and about a quarter of a second on a PC, a few seconds on a Pi Zero
// (age's default of 2^18 needs 256 MiB, half a Pi Zero's memory).
const scryptWorkFactor = 16

// maxRecipients caps a recipients file; a broker's backup goes to a handful.
const maxRecipients = 64

// PassphraseRecipient encrypts to a passphrase (age's scrypt recipient).
func PassphraseRecipient(passphrase string) (age.Recipient, error) {
	r, err := age.NewScryptRecipient(passphrase)
	if err != nil {
		return nil, fmt.Errorf("passphrase: %w", err)
	}
	r.SetWorkFactor(scryptWorkFactor)
	return r, nil
}

// PassphraseIdentity decrypts an archive made with PassphraseRecipient.
func PassphraseIdentity(passphrase string) (age.Identity, error) {
	id, err := age.NewScryptIdentity(passphrase)
	if err != nil {
		return nil, fmt.Errorf("passphrase: %w", err)
	}
	// Refuse archives that would make scrypt take minutes and gigabytes.
	id.SetMaxWorkFactor(20)
	return id, nil
}

// ParseRecipients reads age recipients ("age1..."), one a line, # comments
// allowed, as age's own -R file.
func ParseRecipients(field string, r io.Reader) ([]age.Recipient, error) {
	data, err := io.ReadAll(io.LimitReader(r, 64<<10+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", field, err)
	}
	if len(data) > 64<<10 {
		return nil, fmt.Errorf("%s: over 64 KiB: not a recipients file", field)
	}
	list, err := age.ParseRecipients(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", field, err)
	}
	if len(list) > maxRecipients {
		return nil, fmt.Errorf("%s: %d recipients, over the cap of %d", field, len(list), maxRecipients)
	}
	return list, nil
}

// ParseIdentities reads an age identity file (AGE-SECRET-KEY-1..., as
// age-keygen writes it).
func ParseIdentities(field string, r io.Reader) ([]age.Identity, error) {
	data, err := io.ReadAll(io.LimitReader(r, 64<<10+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", field, err)
	}
	if len(data) > 64<<10 {
		return nil, fmt.Errorf("%s: over 64 KiB: not an identity file", field)
	}
	ids, err := age.ParseIdentities(bytes.NewReader(data))
	if err != nil {
		// age's message can quote the line it failed on: never a key's text.
		return nil, fmt.Errorf("%s: not an age identity file (AGE-SECRET-KEY-1... lines, as age-keygen writes)", field)
	}
	return ids, nil
}

// Seal encrypts the archive to recipients: age's format authenticates every
// 64 KiB chunk and the end of the stream, so a changed or cut archive fails
// to open instead of restoring part of it.
func (a *Archive) Seal(recipients ...age.Recipient) ([]byte, error) {
	var out bytes.Buffer
	w, err := age.Encrypt(&out, recipients...)
	if err != nil {
		return nil, fmt.Errorf("backup: encrypt: %w", err)
	}
	if err := a.Marshal(w); err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("backup: encrypt: %w", err)
	}
	return out.Bytes(), nil
}

// Open decrypts and checks a whole archive (at most MaxArchive bytes) before
// returning it: nothing is restored from an archive that is not whole.
func Open(sealed io.Reader, identities ...age.Identity) (*Archive, error) {
	data, err := io.ReadAll(io.LimitReader(sealed, MaxArchive+1))
	if err != nil {
		return nil, fmt.Errorf("restore: read the archive: %w", err)
	}
	if len(data) > MaxArchive {
		return nil, fmt.Errorf("restore: the archive is over %d bytes", MaxArchive)
	}
	r, err := age.Decrypt(bytes.NewReader(data), identities...)
	if err != nil {
		var noMatch *age.NoIdentityMatchError
		if errors.As(err, &noMatch) || strings.Contains(err.Error(), "incorrect passphrase") {
			return nil, fmt.Errorf("restore: the passphrase or identity does not open this archive")
		}
		return nil, fmt.Errorf("restore: not a mosqprov backup, or damaged: %v", err)
	}
	plain, err := io.ReadAll(io.LimitReader(r, MaxArchive+1))
	if err != nil {
		return nil, fmt.Errorf("restore: the archive is damaged or truncated (it fails its authentication): %v", err)
	}
	if len(plain) > MaxArchive {
		return nil, fmt.Errorf("restore: the archive holds over %d bytes", MaxArchive)
	}
	return Unmarshal(bytes.NewReader(plain))
}
