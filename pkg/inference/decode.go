package inference

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"os"
)

// PNG input with veid_ml.images.load_rgb's conversion rule. Only PNG: JPEG (the usual camera format) is refused,
// because Go's image/jpeg IDCT and upsampling differ from Pillow's libjpeg-turbo, so its pixels would differ.
//
// Go's image/png decodes the pixels; pillowPNG (below) reads the chunks the way Pillow's PngImagePlugin does, so
// that what Pillow refuses is refused here too, the transparency keys and EXIF orientation Pillow applies are applied
// here the same way, and the few cases this port does not reproduce are refused with a clear error instead of
// decoding to other pixels (APNG, orientation in text metadata, out-of-range palette indices).

const (
	MinSide   = 32                // images.DEFAULT_MIN_SIDE: checked by Verify (reason image_too_small)
	MaxPixels = 40_000_000        // images.DEFAULT_MAX_PIXELS
	MaxBytes  = 128 * 1024 * 1024 // images.DEFAULT_MAX_BYTES
)

// RGB is an H x W x 3 uint8 image, row-major: the array load_rgb returns.
type RGB struct {
	Width, Height int
	Pix           []byte
}

// InputError is an image input that cannot be used (images.InputError): "<source>: <problem>"; Reason is the
// stable code (image_unreadable, image_unsupported, image_too_large, image_too_small).
type InputError struct {
	Source, Problem, Reason string
}

func (e *InputError) Error() string { return e.Source + ": " + e.Problem }

func unreadable(source, problem string) error {
	return &InputError{Source: source, Problem: problem, Reason: "image_unreadable"}
}

func unsupported(source, problem string) error {
	return &InputError{Source: source, Problem: problem, Reason: "image_unsupported"}
}

func tooLarge(source, problem string) error {
	return &InputError{Source: source, Problem: problem, Reason: "image_too_large"}
}

// DecodePNGFile reads and decodes a PNG file (see DecodePNG).
func DecodePNGFile(path string) (*RGB, error) {
	source := "file " + path
	st, err := os.Stat(path)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, unreadable(source, "does not exist")
		}
		return nil, unreadable(source, "cannot be read: "+err.Error())
	}
	if st.IsDir() {
		return nil, unreadable(source, "is a directory, not an image file")
	}
	if !st.Mode().IsRegular() {
		return nil, unreadable(source, "is not a regular file")
	}
	if st.Size() > MaxBytes {
		return nil, tooLarge(source, fmt.Sprintf("is %d bytes, more than the %d-byte limit", st.Size(), MaxBytes))
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, unreadable(source, "cannot be read: "+err.Error())
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxBytes+1)) // +1: a file that grew since stat is still caught
	if err != nil {
		return nil, unreadable(source, "cannot be read: "+err.Error())
	}
	if len(data) > MaxBytes {
		return nil, tooLarge(source, fmt.Sprintf("is more than the %d-byte limit", MaxBytes))
	}
	return decodePNG(data, source)
}

// DecodePNG decodes PNG bytes to RGB by load_rgb's rule: 16-bit samples keep their high byte, grey becomes
// R = G = B, alpha (and tRNS keys) is composited over white with out = (c*a + 255*(255-a) + 127) / 255, and the
// EXIF orientation of an eXIf chunk is applied. The 32 px minimum side is not checked here: Verify checks it and
// answers with the reason image_too_small, as Python's verify does.
func DecodePNG(data []byte) (*RGB, error) {
	source := fmt.Sprintf("bytes (%d bytes)", len(data))
	if len(data) > MaxBytes {
		return nil, tooLarge(source, fmt.Sprintf("is larger than the %d-byte limit", MaxBytes))
	}
	return decodePNG(data, source)
}

var pngMagic = []byte("\x89PNG\r\n\x1a\n")

// otherFormat names the formats load_rgb accepts but this port does not decode.
func otherFormat(data []byte) string {
	switch {
	case bytes.HasPrefix(data, []byte{0xff, 0xd8, 0xff}):
		return "JPEG"
	case bytes.HasPrefix(data, []byte("GIF87a")), bytes.HasPrefix(data, []byte("GIF89a")):
		return "GIF"
	case len(data) >= 12 && bytes.HasPrefix(data, []byte("RIFF")) && string(data[8:12]) == "WEBP":
		return "WebP"
	case bytes.HasPrefix(data, []byte("BM")):
		return "BMP"
	case bytes.HasPrefix(data, []byte("II*\x00")), bytes.HasPrefix(data, []byte("MM\x00*")):
		return "TIFF"
	}
	return ""
}

func decodePNG(data []byte, source string) (*RGB, error) {
	if len(data) == 0 {
		return nil, unreadable(source, "is empty (0 bytes)")
	}
	if !bytes.HasPrefix(data, pngMagic) {
		if format := otherFormat(data); format == "JPEG" {
			return nil, unsupported(source, "is a JPEG image; the Go port decodes PNG only (Go's JPEG decoder "+
				"computes other pixels than Pillow's libjpeg-turbo, so scores would differ): send PNG")
		} else if format != "" {
			return nil, unsupported(source, "is a "+format+" image; the Go port decodes PNG only: send PNG")
		}
		return nil, unreadable(source, "is not a PNG image (unrecognised or corrupt header)")
	}
	facts, err := pillowPNG(data, source)
	if err != nil {
		return nil, err
	}
	if int64(facts.width)*int64(facts.height) > MaxPixels {
		return nil, tooLarge(source, fmt.Sprintf("is %dx%d pixels, more than the %d-pixel limit",
			facts.width, facts.height, MaxPixels))
	}
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, unreadable(source, fmt.Sprintf("is truncated or corrupt (PNG data could not be decoded: %v)", err))
	}
	rgb, err := toRGB(img, facts, source)
	if err != nil {
		return nil, err
	}
	return transpose(rgb, facts.orientation), nil
}

// overWhite composites one 8-bit sample over white: images._over_white's exact integer rounding.
func overWhite(c, a uint8) byte {
	return byte((int(c)*int(a) + 255*(255-int(a)) + 127) / 255)
}

// toRGB applies the conversion rule to the decoded image. For grey and truecolour images with a tRNS key the alpha
// is recomputed with Pillow's comparison (pillowPNG.keyAlpha), not Go's.
func toRGB(img image.Image, facts *pngFacts, source string) (*RGB, error) {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	out := &RGB{Width: w, Height: h, Pix: make([]byte, 3*w*h)}
	set := func(x, y int, r, g, bl, a uint8) {
		i := 3 * (y*w + x)
		out.Pix[i], out.Pix[i+1], out.Pix[i+2] = overWhite(r, a), overWhite(g, a), overWhite(bl, a)
	}
	switch m := img.(type) {
	case *image.Gray:
		for y := 0; y < h; y++ {
			row := m.Pix[y*m.Stride : y*m.Stride+w]
			for x, v := range row {
				i := 3 * (y*w + x)
				out.Pix[i], out.Pix[i+1], out.Pix[i+2] = v, v, v
			}
		}
	case *image.Gray16:
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				v := m.Pix[y*m.Stride+2*x] // big-endian: the high byte (>> 8)
				i := 3 * (y*w + x)
				out.Pix[i], out.Pix[i+1], out.Pix[i+2] = v, v, v
			}
		}
	case *image.RGBA: // opaque 8-bit truecolour
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				p := m.Pix[y*m.Stride+4*x:]
				i := 3 * (y*w + x)
				out.Pix[i], out.Pix[i+1], out.Pix[i+2] = p[0], p[1], p[2]
			}
		}
	case *image.RGBA64: // opaque 16-bit truecolour
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				p := m.Pix[y*m.Stride+8*x:]
				i := 3 * (y*w + x)
				out.Pix[i], out.Pix[i+1], out.Pix[i+2] = p[0], p[2], p[4]
			}
		}
	case *image.NRGBA: // 8-bit with alpha, or grey / truecolour with a tRNS key
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				p := m.Pix[y*m.Stride+4*x:]
				a := p[3]
				if facts.hasKey {
					a = facts.keyAlpha(uint16(p[0]), uint16(p[1]), uint16(p[2]))
				}
				set(x, y, p[0], p[1], p[2], a)
			}
		}
	case *image.NRGBA64: // 16-bit with alpha, or with a tRNS key: to 8 bits first, then composite
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				p := m.Pix[y*m.Stride+8*x:]
				a := p[6]
				if facts.hasKey {
					r16 := binary.BigEndian.Uint16(p[0:])
					g16 := binary.BigEndian.Uint16(p[2:])
					b16 := binary.BigEndian.Uint16(p[4:])
					a = facts.keyAlpha(r16, g16, b16)
				}
				set(x, y, p[0], p[2], p[4], a)
			}
		}
	case *image.Paletted:
		colours := make([][4]uint8, len(m.Palette))
		for i, c := range m.Palette {
			switch c := c.(type) {
			case color.RGBA: // no tRNS entry: opaque
				colours[i] = [4]uint8{c.R, c.G, c.B, 255}
			case color.NRGBA:
				colours[i] = [4]uint8{c.R, c.G, c.B, c.A}
			default:
				return nil, unsupported(source, fmt.Sprintf("has an unexpected palette entry type %T", c))
			}
		}
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				idx := int(m.Pix[y*m.Stride+x])
				if idx >= facts.paletteSize {
					// Go reads such indices as opaque black, Pillow as its own palette padding: refuse both.
					return nil, unsupported(source, fmt.Sprintf("uses palette index %d but its palette has %d "+
						"entries (the Go port refuses out-of-range indices)", idx, facts.paletteSize))
				}
				c := colours[idx]
				set(x, y, c[0], c[1], c[2], c[3])
			}
		}
	default:
		return nil, unsupported(source, fmt.Sprintf("decoded to an unsupported pixel layout %T", img))
	}
	return out, nil
}

// transpose applies an EXIF orientation exactly as PIL.ImageOps.exif_transpose's transpositions do.
func transpose(in *RGB, orientation int) *RGB {
	if orientation < 2 || orientation > 8 {
		return in
	}
	w, h := in.Width, in.Height
	ow, oh := w, h
	if orientation >= 5 { // TRANSPOSE, ROTATE_270, TRANSVERSE, ROTATE_90 swap the sides
		ow, oh = h, w
	}
	out := &RGB{Width: ow, Height: oh, Pix: make([]byte, len(in.Pix))}
	for y := 0; y < oh; y++ {
		for x := 0; x < ow; x++ {
			var sx, sy int
			switch orientation {
			case 2: // FLIP_LEFT_RIGHT
				sx, sy = w-1-x, y
			case 3: // ROTATE_180
				sx, sy = w-1-x, h-1-y
			case 4: // FLIP_TOP_BOTTOM
				sx, sy = x, h-1-y
			case 5: // TRANSPOSE
				sx, sy = y, x
			case 6: // ROTATE_270 (clockwise)
				sx, sy = y, h-1-x
			case 7: // TRANSVERSE
				sx, sy = w-1-y, h-1-x
			case 8: // ROTATE_90 (counter-clockwise)
				sx, sy = w-1-y, x
			}
			copy(out.Pix[3*(y*ow+x):3*(y*ow+x)+3], in.Pix[3*(sy*w+sx):3*(sy*w+sx)+3])
		}
	}
	return out
}

// decodeGreyLinesPNG reads the golden "<case>_lines.png": (N*32) x 512 8-bit grey, the recogniser's line inputs
// stacked top to bottom. Returns the N lines, each LineHeight*LineWidth bytes.
func decodeGreyLinesPNG(data []byte) ([][]byte, error) {
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("lines PNG: %w", err)
	}
	grey, ok := img.(*image.Gray)
	if !ok {
		return nil, fmt.Errorf("lines PNG must be 8-bit grey, got %T", img)
	}
	b := grey.Bounds()
	if b.Dx() != LineWidth || b.Dy()%LineHeight != 0 || b.Dy() == 0 {
		return nil, fmt.Errorf("lines PNG is %dx%d, want (N*%d)x%d", b.Dy(), b.Dx(), LineHeight, LineWidth)
	}
	var lines [][]byte
	for top := 0; top < b.Dy(); top += LineHeight {
		line := make([]byte, 0, LineHeight*LineWidth)
		for y := top; y < top+LineHeight; y++ {
			line = append(line, grey.Pix[y*grey.Stride:y*grey.Stride+LineWidth]...)
		}
		lines = append(lines, line)
	}
	return lines, nil
}
