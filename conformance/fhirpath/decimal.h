// SPDX-License-Identifier: Apache-2.0
#pragma once

// Exact decimal arithmetic for FHIRPath Decimal and Quantity values (no binary floating point):
// a value is `units / 10^scale` with 64-bit units, computed through 128-bit intermediates.
//
//  * Precision: the scale is the number of decimal places written ("1.50" has scale 2) and is
//    kept through +, -, * (scale of x*y is the sum of the scales) and rounding; comparison and
//    equality are by value (1.50 = 1.5).
//  * Range: FHIRPath N1 gives Decimal the range (-10^28+1)/10^8 .. (10^28-1)/10^8. We hold 18
//    to 19 significant digits: fraction digits beyond what 64-bit units hold are rounded (half
//    away from zero), and a value whose integer part needs more than 63 bits (|x| >= 2^63, far
//    outside the range the specification gives) is an overflow. Arithmetic reports overflow
//    (nullopt here; the evaluator turns it into an evaluation error).
//  * Division: rounded to 8 decimal places (the resolution FHIRPath gives Decimal), trailing
//    zeros dropped (1 / 2 = 0.5, 4.0 / 2.0 = 2).
//  * Functions without an exact decimal result (exp, ln, log, sqrt, power with a fractional
//    exponent) and UCUM conversions between units are computed in double and converted back
//    with fromDouble().

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace fhir::fhirpath {

class Decimal {
 public:
  static constexpr int kMaxScale = 18;

  constexpr Decimal() = default;
  constexpr Decimal(int64_t units, int scale) : units_(units), scale_(scale) {}
  static constexpr Decimal ofInteger(int64_t value) { return Decimal(value, 0); }
  // JSON / FHIRPath number text ("-12.50", "1e3", "1.5E-2", "+3"). nullopt when malformed or
  // when the integer part does not fit. More digits than fit are rounded (see above).
  static std::optional<Decimal> parse(std::string_view text);
  // A double rounded to `scale` places (via its shortest exact-enough text, so 0.1 stays 0.1).
  // nullopt for NaN, infinities and overflow.
  static std::optional<Decimal> fromDouble(double value, int scale);

  int64_t units() const { return units_; }
  int scale() const { return scale_; }
  double toDouble() const;
  // Fixed notation with exactly scale() places ("1.50", "-0.5", "3").
  std::string toString() const;

  bool isZero() const { return units_ == 0; }
  int sign() const { return units_ < 0 ? -1 : units_ > 0 ? 1 : 0; }
  // nullopt only for the most negative units (no positive counterpart).
  std::optional<Decimal> negated() const;
  std::optional<Decimal> abs() const;

  // Rounded half away from zero / truncated toward zero / floored / ceiled to `places` (>= 0)
  // decimal places; the result has scale `places` (more places pad with zeros when they fit).
  std::optional<Decimal> rounded(int places) const;
  std::optional<Decimal> truncated(int places) const;
  std::optional<Decimal> floored(int places) const;
  std::optional<Decimal> ceiled(int places) const;
  // The same value with trailing fraction zeros removed.
  Decimal stripped() const;
  // The same value with exactly `places` (>= scale()) places; nullopt when it does not fit.
  std::optional<Decimal> withScale(int places) const;

  // -1/0/1 by value.
  static int compare(const Decimal& a, const Decimal& b);
  bool operator==(const Decimal& other) const { return compare(*this, other) == 0; }

  static std::optional<Decimal> add(const Decimal& a, const Decimal& b);
  static std::optional<Decimal> subtract(const Decimal& a, const Decimal& b);
  static std::optional<Decimal> multiply(const Decimal& a, const Decimal& b);
  // b must not be zero. Rounded to `places` places, trailing zeros dropped.
  static std::optional<Decimal> divide(const Decimal& a, const Decimal& b, int places = 8);
  // Truncated quotient (FHIRPath `div`) as an integer; b must not be zero.
  static std::optional<int64_t> quotient(const Decimal& a, const Decimal& b);
  // Remainder of the truncated division, sign of a (FHIRPath `mod`); b must not be zero.
  static std::optional<Decimal> remainder(const Decimal& a, const Decimal& b);

 private:
  int64_t units_ = 0;
  int scale_ = 0;
};

}  // namespace fhir::fhirpath
