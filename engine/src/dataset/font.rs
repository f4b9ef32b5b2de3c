//! A 5×7 bitmap font for the digits 0–9, drawn by our own code so that
//! ZoomBench images are identical on every machine (no font files, no
//! rasteriser versions).

/// Glyph width in font pixels.
pub const GLYPH_W: u32 = 5;
/// Glyph height in font pixels.
pub const GLYPH_H: u32 = 7;

/// Rows of each digit, most significant bit (of the low 5) on the left.
const DIGITS: [[u8; 7]; 10] = [
    [
        0b01110, 0b10001, 0b10011, 0b10101, 0b11001, 0b10001, 0b01110,
    ], // 0
    [
        0b00100, 0b01100, 0b00100, 0b00100, 0b00100, 0b00100, 0b01110,
    ], // 1
    [
        0b01110, 0b10001, 0b00001, 0b00010, 0b00100, 0b01000, 0b11111,
    ], // 2
    [
        0b11111, 0b00010, 0b00100, 0b00010, 0b00001, 0b10001, 0b01110,
    ], // 3
    [
        0b00010, 0b00110, 0b01010, 0b10010, 0b11111, 0b00010, 0b00010,
    ], // 4
    [
        0b11111, 0b10000, 0b11110, 0b00001, 0b00001, 0b10001, 0b01110,
    ], // 5
    [
        0b00110, 0b01000, 0b10000, 0b11110, 0b10001, 0b10001, 0b01110,
    ], // 6
    [
        0b11111, 0b00001, 0b00010, 0b00100, 0b01000, 0b01000, 0b01000,
    ], // 7
    [
        0b01110, 0b10001, 0b10001, 0b01110, 0b10001, 0b10001, 0b01110,
    ], // 8
    [
        0b01110, 0b10001, 0b10001, 0b01111, 0b00001, 0b00010, 0b01100,
    ], // 9
];

/// Whether font pixel `(x, y)` of `digit` is ink. `digit` is taken modulo 10.
pub fn ink(digit: u8, x: u32, y: u32) -> bool {
    if x >= GLYPH_W || y >= GLYPH_H {
        return false;
    }
    let row = DIGITS[(digit % 10) as usize][y as usize];
    row & (1 << (GLYPH_W - 1 - x)) != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pair_of_digits_differs() {
        for a in 0..10u8 {
            for b in (a + 1)..10 {
                let differ = (0..GLYPH_H)
                    .flat_map(|y| (0..GLYPH_W).map(move |x| (x, y)))
                    .filter(|&(x, y)| ink(a, x, y) != ink(b, x, y))
                    .count();
                assert!(differ >= 3, "{a} and {b} differ in {differ} pixels");
            }
        }
    }
}
