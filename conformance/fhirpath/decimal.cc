// SPDX-License-Identifier: Apache-2.0
#include "conformance/fhirpath/decimal.h"

#include <cmath>
#include <algorithm>
#include <cstdio>
#include <limits>

namespace fhir::fhirpath {

namespace {

using Wide = __int128;
using UWide = unsigned __int128;

constexpr int64_t kMaxUnits = std::numeric_limits<int64_t>::max();

// 10^n for n in [0, 38], the powers unsigned 128 bits hold.
struct Powers {
  UWide value[39];
  constexpr Powers() : value() {
    value[0] = 1;
    for (int i = 1; i < 39; ++i) value[i] = value[i - 1] * 10;
  }
};
constexpr Powers kPowers;

Wide pow10(int n) { return static_cast<Wide>(kPowers.value[n]); }

enum class Mode { kHalfAway, kTruncate, kFloor, kCeiling };

// n / d rounded by `mode`; d > 0.
Wide divideRounded(Wide n, Wide d, Mode mode) {
  Wide q = n / d;
  Wide r = n % d;
  if (r == 0) return q;
  switch (mode) {
    case Mode::kHalfAway: {
      Wide twice = (r < 0 ? -r : r) * 2;
      if (twice >= d) q += n < 0 ? -1 : 1;
      return q;
    }
    case Mode::kTruncate: return q;
    case Mode::kFloor: return n < 0 ? q - 1 : q;
    case Mode::kCeiling: return n > 0 ? q + 1 : q;
  }
  return q;
}

// A wide value brought into 64-bit units, rounding fraction digits away as needed.
// The digits to drop are found first and rounded away once (rounding digit by digit would
// round twice: ...2384|6 -> ...2385 -> ...239).
std::optional<Decimal> fit(Wide units, int scale) {
  if (scale <= Decimal::kMaxScale && units <= kMaxUnits && units >= -kMaxUnits) {
    return Decimal(static_cast<int64_t>(units), scale);  // the common case: nothing to round
  }
  int drop = scale > Decimal::kMaxScale ? scale - Decimal::kMaxScale : 0;
  if (drop > 38) return Decimal(0, Decimal::kMaxScale);  // |units| < 10^38: nothing is left
  Wide divisor = pow10(drop);
  while (units / divisor > kMaxUnits || units / divisor < -kMaxUnits) {
    ++drop;
    divisor *= 10;
  }
  if (drop > scale) return std::nullopt;  // the integer part does not fit
  if (drop > 0) units = divideRounded(units, divisor, Mode::kHalfAway);
  // Rounding up may carry into one more digit (9.99.. -> 10.0..).
  if (units > kMaxUnits || units < -kMaxUnits) {
    if (drop + 1 > scale) return std::nullopt;
    units = divideRounded(units, 10, Mode::kHalfAway);
    ++drop;
  }
  return Decimal(static_cast<int64_t>(units), scale - drop);
}

// Both values with the larger of the two scales (exact: at most 18 places, |units| < 2^63).
void align(const Decimal& a, const Decimal& b, Wide& x, Wide& y, int& scale) {
  scale = a.scale() > b.scale() ? a.scale() : b.scale();
  x = a.scale() == scale ? Wide(a.units()) : Wide(a.units()) * pow10(scale - a.scale());
  y = b.scale() == scale ? Wide(b.units()) : Wide(b.units()) * pow10(scale - b.scale());
}

std::optional<Decimal> rescale(const Decimal& value, int places, Mode mode) {
  if (places < 0) places = 0;
  if (places >= value.scale()) {
    // Pad with zeros as far as they fit.
    int target = places > Decimal::kMaxScale ? Decimal::kMaxScale : places;
    for (; target > value.scale(); --target) {
      if (auto padded = value.withScale(target)) return padded;
    }
    return value;
  }
  Wide units = divideRounded(value.units(), pow10(value.scale() - places), mode);
  return fit(units, places);
}

}  // namespace

std::optional<Decimal> Decimal::parse(std::string_view text) {
  size_t pos = 0;
  bool negative = false;
  if (pos < text.size() && (text[pos] == '+' || text[pos] == '-')) negative = text[pos++] == '-';
  Wide units = 0;
  int scale = 0;
  int dropped_integer_digits = 0;  // integer digits beyond what `units` holds
  bool round_up = false;           // the first dropped fraction digit was 5 or more
  bool dropped_fraction = false;
  constexpr Wide kLimit = Wide(1) * 1'000'000'000'000'000'000 * 1'000'000'000'000'000'000;  // 1e36
  size_t digits = 0;
  for (; pos < text.size() && text[pos] >= '0' && text[pos] <= '9'; ++pos, ++digits) {
    if (units < kLimit) {
      units = units * 10 + (text[pos] - '0');
    } else {
      ++dropped_integer_digits;
    }
  }
  if (pos < text.size() && text[pos] == '.') {
    ++pos;
    size_t fraction = 0;
    for (; pos < text.size() && text[pos] >= '0' && text[pos] <= '9'; ++pos, ++fraction) {
      if (dropped_integer_digits == 0 && units < kLimit) {
        units = units * 10 + (text[pos] - '0');
        ++scale;
      } else if (!dropped_fraction) {
        dropped_fraction = true;
        round_up = text[pos] >= '5';
      }
    }
    if (fraction == 0) return std::nullopt;
  }
  if (digits == 0) return std::nullopt;
  int64_t exponent = 0;
  if (pos < text.size() && (text[pos] == 'e' || text[pos] == 'E')) {
    ++pos;
    bool negative_exponent = false;
    if (pos < text.size() && (text[pos] == '+' || text[pos] == '-')) {
      negative_exponent = text[pos++] == '-';
    }
    size_t exponent_digits = 0;
    for (; pos < text.size() && text[pos] >= '0' && text[pos] <= '9'; ++pos, ++exponent_digits) {
      if (exponent < 1'000'000) exponent = exponent * 10 + (text[pos] - '0');
    }
    if (exponent_digits == 0) return std::nullopt;
    if (negative_exponent) exponent = -exponent;
  }
  if (pos != text.size()) return std::nullopt;
  if (round_up) units += 1;
  // value = units * 10^(dropped_integer_digits + exponent - scale)
  int64_t shift = dropped_integer_digits + exponent - scale;
  if (units == 0) {
    return Decimal(0, static_cast<int>(shift < 0 ? std::min<int64_t>(-shift, kMaxScale) : 0));
  }
  if (shift > 0) {
    if (shift > 38) return std::nullopt;
    for (int64_t i = 0; i < shift; ++i) {
      if (units > kLimit * 10) return std::nullopt;  // 10^37 * 10 still fits
      units *= 10;
    }
    shift = 0;
  }
  int64_t places = -shift;
  // Far more places than any value keeps: round the excess away at once.
  if (places > 60) return Decimal(0, kMaxScale);
  if (negative) units = -units;
  return fit(units, static_cast<int>(places));
}

std::optional<Decimal> Decimal::fromDouble(double value, int scale) {
  if (!std::isfinite(value)) return std::nullopt;
  char buffer[40];
  std::snprintf(buffer, sizeof(buffer), "%.17g", value);
  auto parsed = parse(buffer);
  if (!parsed) return std::nullopt;
  return parsed->rounded(scale);
}

double Decimal::toDouble() const {
  static constexpr double kPowers[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,
                                       1e7,  1e8,  1e9,  1e10, 1e11, 1e12, 1e13,
                                       1e14, 1e15, 1e16, 1e17, 1e18};
  return static_cast<double>(units_) / kPowers[scale_ < 0 ? 0 : scale_ > 18 ? 18 : scale_];
}

std::string Decimal::toString() const {
  UWide magnitude = units_ < 0 ? UWide(-Wide(units_)) : UWide(units_);
  std::string digits;
  do {
    digits.insert(digits.begin(), static_cast<char>('0' + static_cast<int>(magnitude % 10)));
    magnitude /= 10;
  } while (magnitude > 0);
  if (scale_ > 0) {
    if (digits.size() <= static_cast<size_t>(scale_)) {
      digits.insert(0, static_cast<size_t>(scale_) + 1 - digits.size(), '0');
    }
    digits.insert(digits.size() - static_cast<size_t>(scale_), 1, '.');
  }
  if (units_ < 0) digits.insert(digits.begin(), '-');
  return digits;
}

std::optional<Decimal> Decimal::negated() const {
  if (units_ == std::numeric_limits<int64_t>::min()) return std::nullopt;
  return Decimal(-units_, scale_);
}

std::optional<Decimal> Decimal::abs() const { return units_ < 0 ? negated() : *this; }

std::optional<Decimal> Decimal::rounded(int places) const {
  return rescale(*this, places, Mode::kHalfAway);
}
std::optional<Decimal> Decimal::truncated(int places) const {
  return rescale(*this, places, Mode::kTruncate);
}
std::optional<Decimal> Decimal::floored(int places) const {
  return rescale(*this, places, Mode::kFloor);
}
std::optional<Decimal> Decimal::ceiled(int places) const {
  return rescale(*this, places, Mode::kCeiling);
}

Decimal Decimal::stripped() const {
  int64_t units = units_;
  int scale = scale_;
  while (scale > 0 && units % 10 == 0) {
    units /= 10;
    --scale;
  }
  return Decimal(units, scale);
}

std::optional<Decimal> Decimal::withScale(int places) const {
  if (places < scale_ || places > kMaxScale) return std::nullopt;
  Wide units = Wide(units_) * pow10(places - scale_);
  if (units > kMaxUnits || units < -kMaxUnits) return std::nullopt;
  return Decimal(static_cast<int64_t>(units), places);
}

int Decimal::compare(const Decimal& a, const Decimal& b) {
  if (a.scale_ == b.scale_) return a.units_ < b.units_ ? -1 : a.units_ > b.units_ ? 1 : 0;
  Wide x, y;
  int scale;
  align(a, b, x, y, scale);
  return x < y ? -1 : x > y ? 1 : 0;
}

std::optional<Decimal> Decimal::add(const Decimal& a, const Decimal& b) {
  Wide x, y;
  int scale;
  align(a, b, x, y, scale);
  return fit(x + y, scale);
}

std::optional<Decimal> Decimal::subtract(const Decimal& a, const Decimal& b) {
  Wide x, y;
  int scale;
  align(a, b, x, y, scale);
  return fit(x - y, scale);
}

std::optional<Decimal> Decimal::multiply(const Decimal& a, const Decimal& b) {
  // |units| < 2^63 each, so the product fits 127 bits.
  return fit(Wide(a.units_) * Wide(b.units_), a.scale_ + b.scale_);
}

std::optional<Decimal> Decimal::divide(const Decimal& a, const Decimal& b, int places) {
  if (b.units_ == 0) return std::nullopt;
  // a / b = (A / B) * 10^(b.scale - a.scale); the result has `places` places before rounding.
  UWide numerator = a.units_ < 0 ? UWide(-Wide(a.units_)) : UWide(a.units_);
  UWide denominator = b.units_ < 0 ? UWide(-Wide(b.units_)) : UWide(b.units_);
  int shift = b.scale_ - a.scale_ + places;  // decimal digits to produce after the quotient
  if (shift < 0) {
    denominator *= UWide(pow10(-shift));  // < 2^63 * 10^26: fits
    shift = 0;
  }
  constexpr UWide kLimit = UWide(1) << 100;
  UWide result, rest;
  if (shift <= 38 && numerator <= kLimit / kPowers.value[shift]) {
    // One division (a 64-bit one when both fit, as for everyday values).
    UWide scaled = numerator * kPowers.value[shift];
    if ((scaled >> 64) == 0 && (denominator >> 64) == 0) {
      uint64_t n = static_cast<uint64_t>(scaled), d = static_cast<uint64_t>(denominator);
      result = n / d;
      rest = n % d;
    } else {
      result = scaled / denominator;
      rest = scaled % denominator;
    }
  } else {
    result = numerator / denominator;
    rest = numerator % denominator;
    for (int i = 0; i < shift; ++i) {
      if (result > kLimit) return std::nullopt;
      rest *= 10;
      result = result * 10 + rest / denominator;
      rest %= denominator;
    }
  }
  if (rest * 2 >= denominator) result += 1;
  if (result > UWide(kLimit)) return std::nullopt;
  bool negative = (a.units_ < 0) != (b.units_ < 0);
  auto value = fit(negative ? -Wide(result) : Wide(result), places);
  if (!value) return std::nullopt;
  return value->stripped();
}

std::optional<int64_t> Decimal::quotient(const Decimal& a, const Decimal& b) {
  if (b.units_ == 0) return std::nullopt;
  Wide x, y;
  int scale;
  align(a, b, x, y, scale);
  Wide q = x / y;
  if (q > kMaxUnits || q < -kMaxUnits) return std::nullopt;
  return static_cast<int64_t>(q);
}

std::optional<Decimal> Decimal::remainder(const Decimal& a, const Decimal& b) {
  if (b.units_ == 0) return std::nullopt;
  Wide x, y;
  int scale;
  align(a, b, x, y, scale);
  return fit(x % y, scale);
}

}  // namespace fhir::fhirpath
