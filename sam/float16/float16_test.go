package float16

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestHalfConversions(t *testing.T) {
	// Every binary16 value survives a round trip through float32.
	for h := range 1 << 16 {
		f := FromHalf(uint16(h))
		if f != f {
			continue
		}
		require.Equal(t, uint16(h), ToHalf(f), "half %#04x (%g)", h, f)
	}
	cases := []struct {
		f    float32
		want uint16
	}{
		{1, 0x3c00}, {-2, 0xc000}, {65504, 0x7bff}, {65520, 0x7c00}, {1e-8, 0}, {5.960464e-08, 0x0001},
		{1 + 1.0/2048, 0x3c00}, {1 + 3.0/2048, 0x3c02}, // ties to even
	}
	for _, c := range cases {
		require.Equal(t, c.want, ToHalf(c.f), "%g", c.f)
	}
	require.Equal(t, uint16(0x3f80), ToBF16(1))
	require.Equal(t, uint16(0x3f80), ToBF16(1+1.0/256))  // tie, even stays
	require.Equal(t, uint16(0x3f82), ToBF16(1+3.0/256))  // tie, odd rounds up
	require.Equal(t, uint16(0x3f81), ToBF16(1+1.01/128)) // above half
}

func TestBF16Rounding(t *testing.T) {
	for _, tc := range []struct {
		in   uint32 // float32 bits
		want uint16
	}{
		{0x3f800000, 0x3f80}, // 1
		{0x3f808000, 0x3f80}, // 1 + 2⁻⁸: tie, even stays
		{0x3f818000, 0x3f82}, // tie, odd rounds up
		{0x3f808001, 0x3f81}, // just above the tie
		{0x3f807fff, 0x3f80}, // just below
		{0xbf808001, 0xbf81}, // negative
		{0x7f7fffff, 0x7f80}, // max float32 rounds to +Inf, as in torch
		{0x7f800000, 0x7f80}, // +Inf
		{0xff800000, 0xff80}, // -Inf
		{0x00000000, 0x0000},
		{0x80000000, 0x8000},
	} {
		require.Equal(t, tc.want, ToBF16(math.Float32frombits(tc.in)), "%#08x", tc.in)
	}
	nan := ToBF16(math.Float32frombits(0x7f800001)) // a NaN whose top payload bits are 0
	require.True(t, math.IsNaN(float64(FromBF16(nan))), "NaN → %#04x", nan)
}
