package orderbus

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"
)

// Headers of a dead letter whose payload was cut to fit the bus.
const (
	// HeaderTruncated is the original payload's size in bytes; the
	// dead letter carries its first bytes.
	HeaderTruncated = "Boomerang-Truncated"
	// HeaderOriginalSHA256 is the hex SHA-256 of the whole original
	// payload, to match a dead letter with the message it stands for.
	HeaderOriginalSHA256 = "Boomerang-Original-Sha256"
)

// FitDeadLetter is the outbox relay's Fit hook (outbox.RelayOptions.Fit):
// a dead letter whose headers and payload exceed max, the server's max
// payload, keeps only as much of the original payload as fits, with the
// original's size and SHA-256 in headers, so that a dead letter always
// reaches DEADLETTER whatever the server's limit. It leaves every other
// subject alone: an event is published whole or not at all.
func FitDeadLetter(m *nats.Msg, max int) bool {
	if !strings.HasPrefix(m.Subject, DeadLetterRoot) {
		return false
	}
	if m.Header == nil {
		m.Header = nats.Header{}
	}
	if m.Header.Get(HeaderTruncated) == "" {
		sum := sha256.Sum256(m.Data)
		m.Header.Set(HeaderTruncated, strconv.Itoa(len(m.Data)))
		m.Header.Set(HeaderOriginalSHA256, hex.EncodeToString(sum[:]))
	}
	// What the server counts is the encoded headers plus the data.
	headers := m.Size() - len(m.Subject) - len(m.Reply) - len(m.Data)
	room := max - headers
	if room < 0 {
		return false
	}
	if len(m.Data) > room {
		m.Data = m.Data[:room]
	}
	return true
}
