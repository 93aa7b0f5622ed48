package password

import (
	"bytes"
	"compress/gzip"
	_ "embed"
	"io"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// MinLen and MaxLen bound a new password's length, in characters (runes)
// after NFKC normalisation. Anything in between is used whole.
const (
	MinLen = 15
	MaxLen = 1024
)

// The reasons a Rejection gives: short, user-facing and fixed, so that a
// reason can never carry the password it is about.
const (
	ReasonShort       = "at least 15 characters"
	ReasonLong        = "at most 1024 characters"
	ReasonInvalid     = "not valid text"
	ReasonCommon      = "too common"
	ReasonPredictable = "too repetitive or predictable"
	ReasonContext     = "too close to your name or e-mail"
)

// Rejection is the error Check returns for a password that may not be
// used. Reason is one of the Reason constants.
type Rejection struct {
	Reason string
}

func (r *Rejection) Error() string { return "password rejected: " + r.Reason }

func reject(reason string) error { return &Rejection{Reason: reason} }

// minWord is the shortest blocklist entry or context word that counts
// inside a longer password.
const minWord = 4

// The 100,000 most common passwords of the SecLists "10 million password
// list", lower-cased, sorted, one a line: see NOTICE.md.
//
//go:embed common-passwords.txt.gz
var commonGz []byte

// Policy decides whether a new password may be used (security row 18). It
// makes no composition rules and never asks for a change by age: it rejects
// what is too short, too long, common, predictable, or made of the user's
// own details. It is safe for concurrent use.
type Policy struct {
	common  []string // sorted, lower-case, unique
	longest int      // runes in the longest entry of common
	words   []string // context words every check uses
}

// NewPolicy returns a Policy with the embedded list of common passwords
// loaded (about 100,000 entries, 1 MB in memory) and the product's name as
// a context word.
func NewPolicy() *Policy {
	zr, err := gzip.NewReader(bytes.NewReader(commonGz))
	if err != nil {
		panic("password: embedded common-password list: " + err.Error())
	}
	data, err := io.ReadAll(zr)
	if err != nil {
		panic("password: embedded common-password list: " + err.Error())
	}
	common := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if !slices.IsSorted(common) {
		slices.Sort(common)
	}
	common = slices.Compact(common)
	longest := 0
	for _, w := range common {
		longest = max(longest, utf8.RuneCountInString(w))
	}
	return &Policy{common: common, longest: longest, words: []string{"vigil"}}
}

// Check returns nil if pw may be used, else a *Rejection saying why.
// context holds what the user's password must not be made of: their e-mail
// address or its local part, their name, their organisation's name. Each
// is split into words; a word of four or more characters counts.
//
// pw is rejected when, after NFKC: it has fewer than MinLen or more than
// MaxLen characters; it is on the list of common passwords, also with
// digits or symbols added before or after, or with spaces, '-', '_' or '.'
// between words; it is a short unit repeated or a run like "abcdef…" or
// "987654…"; or context words make up most of it, or all of it but digits
// and symbols.
func (p *Policy) Check(pw string, context ...string) error {
	if len(pw) > maxInputBytes {
		return reject(ReasonLong)
	}
	if !utf8.ValidString(pw) {
		return reject(ReasonInvalid)
	}
	n := norm.NFKC.String(pw)
	switch c := utf8.RuneCountInString(n); {
	case c < MinLen:
		return reject(ReasonShort)
	case c > MaxLen:
		return reject(ReasonLong)
	}
	s := []rune(strings.ToLower(n))
	forms := [][]rune{s}
	if sq := squash(s); len(sq) != len(s) {
		forms = append(forms, sq)
	}
	for _, f := range forms {
		if p.isCommon(f) {
			return reject(ReasonCommon)
		}
	}
	for _, f := range forms {
		if predictable(f) {
			return reject(ReasonPredictable)
		}
	}
	words := contextWords(p.words, context)
	for _, f := range forms {
		if contextual(f, words) {
			return reject(ReasonContext)
		}
	}
	return nil
}

func (p *Policy) listed(w string) bool {
	_, ok := slices.BinarySearch(p.common, w)
	return ok
}

// isCommon reports whether f is a listed password with nothing but digits
// and symbols around it: f[j:i] is listed, and f[:j] and f[i:] hold no
// letter (or, in a password with no letter, no digit: a random number is
// not "123456" with digits added).
func (p *Policy) isCommon(f []rune) bool {
	if p.listed(string(f)) {
		return true
	}
	n := len(f)
	lo, hi := span(f, unicode.IsLetter)
	if lo == n {
		lo, hi = span(f, unicode.IsDigit)
	}
	if lo == n { // symbols only: any run of them may be the core
		lo, hi = n, 0
	}
	for j := max(0, hi-p.longest); j <= lo; j++ {
		for i := max(hi, j+minWord); i <= min(n, j+p.longest); i++ {
			if p.listed(string(f[j:i])) {
				return true
			}
		}
	}
	return false
}

// span returns the index of the first rune of f that is in, and one past
// the last; len(f), 0 when none is.
func span(f []rune, in func(rune) bool) (lo, hi int) {
	lo, hi = len(f), 0
	for i, r := range f {
		if in(r) {
			lo = min(lo, i)
			hi = i + 1
		}
	}
	return lo, hi
}

// squash drops the separators people put between the words of a phrase.
func squash(f []rune) []rune {
	return slices.DeleteFunc(slices.Clone(f), func(r rune) bool {
		return unicode.IsSpace(r) || r == '-' || r == '_' || r == '.'
	})
}

// predictable reports whether f, or the part of it left when digits and
// symbols around it are dropped if that is at least half of it, is a unit
// shorter than MinLen repeated, or a run of consecutive characters.
func predictable(f []rune) bool {
	if repeated(f) || run(f) {
		return true
	}
	isAlnum := func(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }
	for _, in := range []func(rune) bool{unicode.IsLetter, isAlnum} {
		lo, hi := span(f, in)
		if hi-lo < len(f) && 2*(hi-lo) >= len(f) && (repeated(f[lo:hi]) || run(f[lo:hi])) {
			return true
		}
	}
	return false
}

// repeated reports whether f is a unit shorter than MinLen written at
// least twice (the last time perhaps in part).
func repeated(f []rune) bool {
	n := len(f)
	if n < 2 {
		return false
	}
	// Knuth–Morris–Pratt failure function: f's shortest period is
	// n - pi[n-1].
	pi := make([]int, n)
	for i := 1; i < n; i++ {
		k := pi[i-1]
		for k > 0 && f[i] != f[k] {
			k = pi[k-1]
		}
		if f[i] == f[k] {
			k++
		}
		pi[i] = k
	}
	period := n - pi[n-1]
	return 2*period <= n && period < MinLen
}

// run reports whether f's characters go up or down by one all the way
// ("abcdef", "3210987", digits wrapping round).
func run(f []rune) bool {
	if len(f) < 3 {
		return false
	}
	d := step(f[0], f[1])
	if d == 0 {
		return false
	}
	for i := 2; i < len(f); i++ {
		if step(f[i-1], f[i]) != d {
			return false
		}
	}
	return true
}

func step(a, b rune) int {
	switch {
	case b == a+1 || (a == '9' && b == '0'):
		return 1
	case b == a-1 || (a == '0' && b == '9'):
		return -1
	}
	return 0
}

// contextWords splits base and ctx into the lower-case words of four or
// more characters a password must not be made of: each string whole, an
// e-mail address's local part and domain labels, each word and the words
// run together.
func contextWords(base, ctx []string) []string {
	var out []string
	add := func(w string) {
		if utf8.RuneCountInString(w) >= minWord && utf8.RuneCountInString(w) <= MaxLen && !slices.Contains(out, w) {
			out = append(out, w)
		}
	}
	addWords := func(s string) {
		add(s)
		ws := strings.FieldsFunc(s, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
		for _, w := range ws {
			add(w)
		}
		add(strings.Join(ws, ""))
	}
	for _, c := range slices.Concat(base, ctx) {
		if len(c) > maxInputBytes || !utf8.ValidString(c) {
			continue
		}
		c = strings.ToLower(norm.NFKC.String(c))
		if at := strings.LastIndexByte(c, '@'); at >= 0 {
			labels := strings.Split(c[at+1:], ".")
			for _, l := range labels[:max(1, len(labels)-1)] { // not the TLD
				addWords(l)
			}
			c = c[:at]
		}
		addWords(c)
	}
	return out
}

// contextual reports whether occurrences of words cover at least half of
// f's characters, or all its letters.
func contextual(f []rune, words []string) bool {
	s := string(f)
	covered := make([]bool, len(s))
	hit := false
	for _, w := range words {
		for off := 0; off < len(s); {
			i := strings.Index(s[off:], w)
			if i < 0 {
				break
			}
			for k := off + i; k < off+i+len(w); k++ {
				covered[k] = true
			}
			hit = true
			off += i + 1
		}
	}
	if !hit {
		return false
	}
	total, cov, looseLetters := 0, 0, 0
	for i, r := range s {
		total++
		switch {
		case covered[i]:
			cov++
		case unicode.IsLetter(r):
			looseLetters++
		}
	}
	return 2*cov >= total || looseLetters == 0
}
