package inference

import (
	"fmt"
	"strconv"
	"strings"
)

// ICAO Doc 9303 machine-readable zones: check digits and parsing (veid_ml.mrz.parse_mrz, check_digit and
// _detect_format, line for line). Positions in comments are 1-based and inclusive, as in the spec.

// Check is one MRZ check digit and whether it matches; a result keeps them in Python's dict order.
type Check struct {
	Name string
	OK   bool
}

// MRZResult is mrz.MRZResult without the per-field confidences (the VEID result does not use them). Text fields
// have fillers removed; dates stay YYMMDD.
type MRZResult struct {
	Format, DocumentType, IssuingState, Surname, GivenNames, DocumentNumber, Nationality string
	BirthDate, Sex, ExpiryDate, OptionalData, OptionalData2                              string
	Lines                                                                                []string
	Checks                                                                               []Check
}

// Valid is MRZResult.valid: every check digit matches.
func (r *MRZResult) Valid() bool {
	for _, c := range r.Checks {
		if !c.OK {
			return false
		}
	}
	return true
}

func isMRZChar(c byte) bool { return c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c == '<' }

// charValue is mrz.char_value.
func charValue(c byte) (int, error) {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0'), nil
	case c >= 'A' && c <= 'Z':
		return int(c-'A') + 10, nil
	case c == '<':
		return 0, nil
	}
	return 0, fmt.Errorf("character %q is not allowed in an MRZ (only 0-9, A-Z and '<')", c)
}

// CheckDigit is mrz.check_digit: weighted (7, 3, 1, ...) sum of character values, mod 10.
func CheckDigit(s string) (string, error) {
	weights := [3]int{7, 3, 1}
	sum := 0
	for i := 0; i < len(s); i++ {
		v, err := charValue(s[i])
		if err != nil {
			return "", err
		}
		sum += v * weights[i%3]
	}
	return strconv.Itoa(sum % 10), nil
}

// detectFormat is mrz._detect_format.
func detectFormat(lines []string) (string, error) {
	lengths := make([]int, len(lines))
	for i, l := range lines {
		lengths[i] = len(l)
	}
	switch {
	case len(lines) == 3 && lengths[0] == 30 && lengths[1] == 30 && lengths[2] == 30:
		return "TD1", nil
	case len(lines) == 2 && lengths[0] == 36 && lengths[1] == 36:
		if strings.HasPrefix(lines[0], "V") {
			return "MRV-B", nil
		}
		return "TD2", nil
	case len(lines) == 2 && lengths[0] == 44 && lengths[1] == 44:
		if strings.HasPrefix(lines[0], "V") {
			return "MRV-A", nil
		}
		return "TD3", nil
	}
	return "", fmt.Errorf("MRZ must be 3 lines of 30, 2 of 36 or 2 of 44 characters; got %d lines of %v",
		len(lines), lengths)
}

// take reads a field by its spec span (1-based, inclusive), like mrz._Reader.take.
func take(lines []string, line, start, end int) string { return lines[line][start-1 : end] }

// checkOK is mrz._check: the digit is a digit and equals the value's check digit.
func checkOK(value string, digit byte) bool {
	if digit < '0' || digit > '9' {
		return false
	}
	d, err := CheckDigit(value)
	return err == nil && d[0] == digit
}

// splitName is mrz._split_name: SURNAME<<GIVEN<NAMES -> ("SURNAME", "GIVEN NAMES").
func splitName(name string) (string, string) {
	surname, given, _ := strings.Cut(name, "<<")
	clean := func(s string) string { return strings.Trim(strings.ReplaceAll(s, "<", " "), pyWhitespace) }
	return clean(surname), clean(given)
}

// pyWhitespace is what Python's str.strip() removes from MRZ-derived text (only ' ' can occur here).
const pyWhitespace = " \t\n\r\x0b\x0c"

// numberFrom is mrz._number_from: the document number and its check, following the TD1/TD2 overflow rule when
// the check position is '<'. Returns (number, ok, optional data).
func numberFrom(lines []string, line, start, optionalLine, optionalStart, optionalEnd int) (string, bool, string) {
	number := take(lines, line, start, start+8)
	digit := lines[line][start+8]
	optional := lines[optionalLine][optionalStart-1 : optionalEnd]
	if digit == '<' && optional[0] != '<' {
		overflow, _, _ := strings.Cut(optional, "<")
		full := number + overflow[:len(overflow)-1]
		ok := checkOK(full, overflow[len(overflow)-1])
		restStart := optionalStart + len(overflow) + 1
		rest := ""
		if restStart <= optionalEnd {
			rest = take(lines, optionalLine, restStart, optionalEnd)
		}
		return full, ok, strings.Trim(rest, "<")
	}
	ok := checkOK(number, digit)
	optional = take(lines, optionalLine, optionalStart, optionalEnd)
	return strings.Trim(number, "<"), ok, strings.Trim(optional, "<")
}

// ParseMRZ is mrz.parse_mrz: TD1/TD2/TD3/MRV-A/MRV-B lines, every check digit the format defines verified.
func ParseMRZ(lines []string) (*MRZResult, error) {
	for i, line := range lines {
		for j := 0; j < len(line); j++ {
			if !isMRZChar(line[j]) {
				return nil, fmt.Errorf("MRZ line %d %q has characters outside 0-9, A-Z, '<'", i+1, line)
			}
		}
	}
	format, err := detectFormat(lines)
	if err != nil {
		return nil, err
	}
	r := &MRZResult{Format: format, Lines: append([]string{}, lines...)}
	var documentType, issuingState, number, optional, birth, sex, expiry, nationality, optional2 string
	checks := map[string]bool{}
	l1 := lines[1]
	if format == "TD1" {
		documentType = take(lines, 0, 1, 2)
		issuingState = take(lines, 0, 3, 5)
		var ok bool
		number, ok, optional = numberFrom(lines, 0, 6, 0, 16, 30)
		checks["document_number"] = ok
		birth, sex, expiry = take(lines, 1, 1, 6), take(lines, 1, 8, 8), take(lines, 1, 9, 14)
		checks["birth_date"] = checkOK(birth, l1[6])
		checks["expiry_date"] = checkOK(expiry, l1[14])
		nationality = take(lines, 1, 16, 18)
		optional2 = take(lines, 1, 19, 29)
		checks["composite"] = checkOK(lines[0][5:30]+l1[0:7]+l1[8:15]+l1[18:29], l1[29])
		r.Surname, r.GivenNames = splitName(take(lines, 2, 1, 30))
		// TD1 keeps the insertion order above
		r.Checks = orderedChecks(checks, "document_number", "birth_date", "expiry_date", "composite")
	} else {
		width := len(lines[0])
		documentType = take(lines, 0, 1, 2)
		issuingState = take(lines, 0, 3, 5)
		r.Surname, r.GivenNames = splitName(take(lines, 0, 6, width))
		nationality = take(lines, 1, 11, 13)
		birth, sex, expiry = take(lines, 1, 14, 19), take(lines, 1, 21, 21), take(lines, 1, 22, 27)
		if format == "TD2" {
			var ok bool
			number, ok, optional = numberFrom(lines, 1, 1, 1, 29, 35)
			checks["document_number"] = ok
		} else {
			number = take(lines, 1, 1, 9)
			checks["document_number"] = checkOK(number, l1[9])
			number = strings.Trim(number, "<")
			optionalEnd := map[string]int{"TD3": 42, "MRV-A": 44, "MRV-B": 36}[format]
			optional = take(lines, 1, 29, optionalEnd)
			if format == "TD3" { // Part 4: the personal-number check digit may be '<' when the field is all fillers
				checks["optional_data"] = checkOK(optional, l1[42]) ||
					(optional == strings.Repeat("<", 14) && l1[42] == '<')
			}
			optional = strings.Trim(optional, "<")
		}
		checks["birth_date"] = checkOK(birth, l1[19])
		checks["expiry_date"] = checkOK(expiry, l1[27])
		if format == "TD2" || format == "TD3" {
			compositeEnd := 43
			if format == "TD2" {
				compositeEnd = 35
			}
			checks["composite"] = checkOK(l1[0:10]+l1[13:20]+l1[21:compositeEnd], l1[compositeEnd])
		}
		r.Checks = orderedChecks(checks, "document_number", "birth_date", "expiry_date", "optional_data",
			"composite")
	}
	r.DocumentType = strings.Trim(documentType, "<")
	r.IssuingState = strings.Trim(issuingState, "<")
	r.DocumentNumber = number
	r.Nationality = strings.Trim(nationality, "<")
	r.BirthDate, r.Sex, r.ExpiryDate = birth, sex, expiry
	r.OptionalData, r.OptionalData2 = optional, strings.Trim(optional2, "<")
	return r, nil
}

func orderedChecks(checks map[string]bool, order ...string) []Check {
	var out []Check
	for _, name := range order {
		if ok, found := checks[name]; found {
			out = append(out, Check{Name: name, OK: ok})
		}
	}
	return out
}

// Reading a recognised MRZ: mrz.correct_reading (without confidences), line for line.
var (
	fold = func() map[rune]rune { // mrz._FOLD
		from := []rune("abcdefghijklmnopqrstuvwxyzÀÁÂÄÅÇÈÉÊËÍÎÏÑÓÔÖØÚÛÜàáâäåçèéêëíîïñóôöøúûü")
		to := []rune("ABCDEFGHIJKLMNOPQRSTUVWXYZAAAAACEEEEIIINOOOOUUUAAAAACEEEEIIINOOOOUUU")
		m := make(map[rune]rune, len(from))
		for i, r := range from {
			m[r] = to[i]
		}
		return m
	}()
	asDigit    = map[rune]rune{'O': '0', 'I': '1', 'Z': '2', 'S': '5', 'G': '6', 'B': '8'}
	asLetter   = map[rune]rune{'0': 'O', '1': 'I', '2': 'Z', '5': 'S', '6': 'G', '8': 'B'}
	secondLine = strings.Repeat("x", 9) + "N" + "AAA" + strings.Repeat("N", 7) + "A" + strings.Repeat("N", 7)
	// positionKinds is mrz._POSITION_KINDS: A letters or '<', N digits or '<', x anything.
	positionKinds = map[string][]string{
		"TD1": {"AxAAA" + strings.Repeat("x", 9) + "N" + strings.Repeat("x", 15),
			strings.Repeat("N", 7) + "A" + strings.Repeat("N", 7) + "AAA" + strings.Repeat("x", 11) + "N",
			strings.Repeat("A", 30)},
		"TD2":   {"Ax" + strings.Repeat("A", 34), secondLine + strings.Repeat("x", 7) + "N"},
		"MRV-B": {"Ax" + strings.Repeat("A", 34), secondLine + strings.Repeat("x", 8)},
		"TD3":   {"Ax" + strings.Repeat("A", 42), secondLine + strings.Repeat("x", 14) + "NN"},
		"MRV-A": {"Ax" + strings.Repeat("A", 42), secondLine + strings.Repeat("x", 16)},
	}
)

// maxFillerFix is mrz.MAX_FILLER_FIX; maxAmbiguous is mrz.MAX_AMBIGUOUS.
const (
	maxFillerFix = 2
	maxAmbiguous = 4
)

// checkedNumbers is mrz._CHECKED_NUMBERS: {line, start, end} of the numbers a check digit (at end) covers.
var checkedNumbers = map[string][][3]int{
	"TD1": {{0, 5, 14}}, "TD2": {{1, 0, 9}}, "MRV-B": {{1, 0, 9}}, "TD3": {{1, 0, 9}, {1, 28, 42}}, "MRV-A": {{1, 0, 9}},
}

// spellByCheck is mrz._spell_by_check: the one other spelling of a number's O and 0 for which its check digit
// holds, when it fails as read and exactly one does.
func spellByCheck(number []rune, digit rune) []rune {
	var spots []int
	for i, r := range number {
		if r == 'O' || r == '0' {
			spots = append(spots, i)
		}
	}
	if digit < '0' || digit > '9' || len(spots) == 0 || len(spots) > maxAmbiguous {
		return number
	}
	if d, err := CheckDigit(string(number)); err != nil || rune(d[0]) == digit {
		return number
	}
	var fits [][]rune
	for mask := 1; mask < 1<<len(spots); mask++ {
		spelt := append([]rune{}, number...)
		for k, i := range spots {
			if mask>>k&1 == 1 {
				if spelt[i] == 'O' {
					spelt[i] = '0'
				} else {
					spelt[i] = 'O'
				}
			}
		}
		if d, err := CheckDigit(string(spelt)); err == nil && rune(d[0]) == digit {
			fits = append(fits, spelt)
		}
	}
	if len(fits) == 1 {
		return fits[0]
	}
	return number
}

// CorrectReading is mrz.correct_reading: lower case and accents folded to capitals, a line up to maxFillerFix
// characters off its format's width mended in its longest filler run, look-alike digits and letters swapped where
// the position allows only the other kind, a number's O and 0 spelt as its check digit allows (one way only).
func CorrectReading(lines []string) []string {
	out := make([][]rune, len(lines))
	for i, line := range lines {
		for _, r := range line {
			if f, ok := fold[r]; ok {
				r = f
			}
			out[i] = append(out[i], r)
		}
	}
	strs := func() []string {
		s := make([]string, len(out))
		for i, r := range out {
			s[i] = string(r)
		}
		return s
	}
	format, width := readingFormat(strs())
	if width == 0 {
		return strs()
	}
	for i, line := range out {
		off := len(line) - width
		if off == 0 || off > maxFillerFix || off < -maxFillerFix {
			continue
		}
		// the longest run of two or more '<' (the last of equals), longer than the fillers to take out
		bestStart, bestLen := -1, 0
		for j := 0; j < len(line); {
			if line[j] != '<' {
				j++
				continue
			}
			k := j
			for k < len(line) && line[k] == '<' {
				k++
			}
			if n := k - j; n >= 2 && n > off && n >= bestLen {
				bestStart, bestLen = j, n
			}
			j = k
		}
		if bestStart < 0 {
			continue
		}
		mended := append([]rune{}, line[:bestStart]...)
		for n := 0; n < bestLen-off; n++ {
			mended = append(mended, '<')
		}
		out[i] = append(mended, line[bestStart+bestLen:]...)
	}
	for i, kinds := range positionKinds[format] {
		if len(out[i]) != width {
			continue
		}
		for j, r := range out[i] {
			if kinds[j] == 'A' {
				if l, ok := asLetter[r]; ok {
					out[i][j] = l
				}
			} else if kinds[j] == 'N' {
				if d, ok := asDigit[r]; ok {
					out[i][j] = d
				}
			}
		}
	}
	for _, n := range checkedNumbers[format] {
		line, start, end := n[0], n[1], n[2]
		if len(out[line]) != width {
			continue
		}
		spelt := spellByCheck(append([]rune{}, out[line][start:end]...), out[line][end])
		out[line] = append(append(append([]rune{}, out[line][:start]...), spelt...), out[line][end:]...)
	}
	return strs()
}
