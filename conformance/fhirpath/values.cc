// SPDX-License-Identifier: Apache-2.0
// Item factories, date/time and quantity arithmetic helpers, JSON output.

#include <bit>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>

#include "conformance/fhirpath/internal.h"

namespace fhir::fhirpath {

// ---- collection buffers ---------------------------------------------------------------------

namespace pool {
namespace {

constexpr size_t kMinShift = 6;   // 64 bytes
constexpr size_t kClasses = 10;   // up to 32 KiB; larger buffers go to operator new
constexpr size_t kKeepBytes = 64 * 1024;  // per class and thread

size_t classOf(size_t bytes) {
  size_t shift = bytes <= 1 ? 0 : static_cast<size_t>(std::bit_width(bytes - 1));
  return shift <= kMinShift ? 0 : shift - kMinShift;
}

struct FreeBuffer {
  FreeBuffer* next;
};

// Trivially destructible, so it stays readable while other thread_locals are destroyed (their
// collections may be freed after the lists are gone).
thread_local bool t_lists_alive = false;

struct FreeLists {
  FreeBuffer* head[kClasses] = {};
  size_t count[kClasses] = {};
  FreeLists() { t_lists_alive = true; }
  ~FreeLists();
};

thread_local FreeLists t_lists;

FreeLists::~FreeLists() {
  t_lists_alive = false;
  for (size_t size_class = 0; size_class < kClasses; ++size_class) {
    while (head[size_class] != nullptr) {
      FreeBuffer* buffer = head[size_class];
      head[size_class] = buffer->next;
      ::operator delete(buffer);
    }
  }
}

}  // namespace

void* allocate(size_t bytes) {
  size_t size_class = classOf(bytes);
  if (size_class >= kClasses) return ::operator new(bytes);
  FreeLists& lists = t_lists;  // constructed on first use; never again after thread exit
  if (!t_lists_alive) return ::operator new(size_t{1} << (size_class + kMinShift));
  if (FreeBuffer* buffer = lists.head[size_class]) {
    lists.head[size_class] = buffer->next;
    --lists.count[size_class];
    return buffer;
  }
  return ::operator new(size_t{1} << (size_class + kMinShift));
}

void deallocate(void* buffer, size_t bytes) noexcept {
  if (buffer == nullptr) return;
  size_t size_class = classOf(bytes);
  if (size_class < kClasses && t_lists_alive) {
    FreeLists& lists = t_lists;
    if (lists.count[size_class] < kKeepBytes >> (size_class + kMinShift) ||
        lists.count[size_class] < 4) {
      auto* free_buffer = static_cast<FreeBuffer*>(buffer);
      free_buffer->next = lists.head[size_class];
      lists.head[size_class] = free_buffer;
      ++lists.count[size_class];
      return;
    }
  }
  ::operator delete(buffer);
}

}  // namespace pool

// ---- Item -----------------------------------------------------------------------------------

namespace {

// Computed strings (with their shared_ptr control block) come from the collections' pool too:
// string functions make and drop one per item.
std::shared_ptr<const std::string> sharedText(std::string text) {
  return std::allocate_shared<const std::string>(PoolAllocator<std::string>(), std::move(text));
}

}  // namespace

Item Item::string(std::string value) {
  Item item;
  item.kind_ = Kind::kString;
  item.text_ = sharedText(std::move(value));
  return item;
}

Item Item::date(std::string text) {
  Item item;
  item.kind_ = Kind::kDate;
  item.text_ = sharedText(std::move(text));
  return item;
}

Item Item::dateTime(std::string text) {
  Item item;
  item.kind_ = Kind::kDateTime;
  item.text_ = sharedText(std::move(text));
  return item;
}

Item Item::time(std::string text) {
  Item item;
  item.kind_ = Kind::kTime;
  item.text_ = sharedText(std::move(text));
  return item;
}

Item Item::quantity(Quantity quantity) {
  Item item;
  item.kind_ = Kind::kQuantity;
  item.number_.integer = quantity.value.units();
  item.scale_ = quantity.value.scale();
  item.text_ = sharedText(std::move(quantity.unit));
  return item;
}

const std::string& Item::text() const {
  static const std::string kEmpty;
  return text_ ? *text_ : kEmpty;
}

std::string_view Item::typeName() const {
  switch (kind_) {
    case Kind::kNode:
      if (!type_name_.empty()) return type_name_;
      if (value_ != nullptr) {
        if (value_->IsObject()) {
          if (auto type = json::getString(*value_, "resourceType")) return *type;
          return {};
        }
        if (value_->IsBool()) return "boolean";
        if (json::isNumber(*value_)) {
          return json::numberAsInt64(*value_) ? "integer" : "decimal";
        }
        if (json::isString(*value_)) return "string";
      }
      return {};
    case Kind::kBoolean: return "Boolean";
    case Kind::kString: return type_name_.empty() ? "String" : type_name_;  // or "TypeInfo"
    case Kind::kInteger: return "Integer";
    case Kind::kDecimal: return "Decimal";
    case Kind::kDate: return "Date";
    case Kind::kDateTime: return "DateTime";
    case Kind::kTime: return "Time";
    case Kind::kQuantity: return "Quantity";
  }
  return {};
}

std::optional<std::string> Item::primitiveText() const {
  switch (kind_) {
    case Kind::kNode:
      if (value_ == nullptr) return std::nullopt;
      if (value_->IsBool()) return std::string(value_->GetBool() ? "true" : "false");
      if (json::isNumber(*value_)) return json::numberText(*value_);
      if (json::isString(*value_)) return std::string(json::stringView(*value_));
      return std::nullopt;
    case Kind::kBoolean: return std::string(boolean_ ? "true" : "false");
    case Kind::kString:
    case Kind::kDate:
    case Kind::kDateTime:
    case Kind::kTime: return text();
    case Kind::kInteger: return std::to_string(number_.integer);
    case Kind::kDecimal: return formatDecimal(decimalValue());
    case Kind::kQuantity: {
      std::string out = formatDecimal(decimalValue());
      if (isCalendarKeyword(text())) return out + " " + text();
      return out + " '" + text() + "'";
    }
  }
  return std::nullopt;
}

// ---- numbers --------------------------------------------------------------------------------

std::string formatDecimal(const Decimal& value) {
  std::string out = value.toString();
  // "-0" and "-0.00" print as zero.
  bool all_zero = true;
  for (char c : out) {
    if (c != '-' && c != '0' && c != '.') all_zero = false;
  }
  if (all_zero && !out.empty() && out[0] == '-') out.erase(0, 1);
  return out;
}

int scaleOf(std::string_view text) {
  size_t dot = text.find('.');
  if (dot == std::string_view::npos) return 0;
  size_t end = text.find_first_of("eE", dot);
  if (end == std::string_view::npos) end = text.size();
  return static_cast<int>(end - dot - 1);
}

// ---- date/time ------------------------------------------------------------------------------

namespace {

bool readDigits(std::string_view text, size_t& pos, size_t count, int& out) {
  if (pos + count > text.size()) return false;
  int value = 0;
  for (size_t i = 0; i < count; ++i) {
    char c = text[pos + i];
    if (c < '0' || c > '9') return false;
    value = value * 10 + (c - '0');
  }
  out = value;
  pos += count;
  return true;
}

bool parseTimeFields(std::string_view text, size_t& pos, DateTimeParts& parts) {
  if (!readDigits(text, pos, 2, parts.hour) || parts.hour > 23) return false;
  parts.precision = 4;
  if (pos < text.size() && text[pos] == ':') {
    ++pos;
    if (!readDigits(text, pos, 2, parts.minute) || parts.minute > 59) return false;
    parts.precision = 5;
    if (pos < text.size() && text[pos] == ':') {
      ++pos;
      if (!readDigits(text, pos, 2, parts.second) || parts.second > 59) return false;
      parts.precision = 6;
      if (pos < text.size() && text[pos] == '.') {
        ++pos;
        size_t start = pos;
        int millis = 0;
        int digits = 0;
        while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
          if (digits < 3) millis = millis * 10 + (text[pos] - '0');
          ++digits;
          ++pos;
        }
        if (pos == start) return false;
        while (digits < 3) {
          millis *= 10;
          ++digits;
        }
        parts.millis = millis;
        parts.precision = 7;
      }
    }
  }
  return true;
}

int daysInMonth(int year, int month) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (month == 2 && ((year % 4 == 0 && year % 100 != 0) || year % 400 == 0)) return 29;
  return kDays[(month - 1 + 12) % 12];
}

// Days since 1970-01-01 (proleptic Gregorian).
int64_t daysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

void civilFromDays(int64_t z, int& year, int& month, int& day) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const int64_t y = static_cast<int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  day = static_cast<int>(doy - (153 * mp + 2) / 5 + 1);
  month = static_cast<int>(mp < 10 ? mp + 3 : mp - 9);
  year = static_cast<int>(y + (month <= 2));
}

// Milliseconds since the epoch in UTC for the fields present (missing fields as their minimum).
int64_t epochMillis(const DateTimeParts& p) {
  int64_t days = p.has_date ? daysFromCivil(p.year, static_cast<unsigned>(p.month),
                                            static_cast<unsigned>(p.day))
                            : 0;
  int64_t ms = ((days * 24 + p.hour) * 60 + p.minute) * 60000LL + p.second * 1000LL + p.millis;
  if (p.has_tz) ms -= p.tz_minutes * 60000LL;
  return ms;
}

void setFromEpochMillis(DateTimeParts& p, int64_t ms) {
  if (p.has_tz) ms += p.tz_minutes * 60000LL;
  int64_t days = ms >= 0 ? ms / 86400000LL : -((-ms + 86400000LL - 1) / 86400000LL);
  int64_t rest = ms - days * 86400000LL;
  if (p.has_date) civilFromDays(days, p.year, p.month, p.day);
  p.hour = static_cast<int>(rest / 3600000);
  p.minute = static_cast<int>(rest / 60000 % 60);
  p.second = static_cast<int>(rest / 1000 % 60);
  p.millis = static_cast<int>(rest % 1000);
}

}  // namespace

std::optional<DateTimeParts> parseDateTime(std::string_view text, Item::Kind kind) {
  DateTimeParts parts;
  size_t pos = 0;
  if (kind == Item::Kind::kTime) {
    parts.has_date = false;
    if (!parseTimeFields(text, pos, parts)) return std::nullopt;
    return pos == text.size() ? std::optional(parts) : std::nullopt;
  }
  // FHIRPath Date and DateTime start at year 0001.
  if (!readDigits(text, pos, 4, parts.year) || parts.year < 1) return std::nullopt;
  parts.precision = 1;
  if (pos < text.size() && text[pos] == '-') {
    ++pos;
    if (!readDigits(text, pos, 2, parts.month) || parts.month < 1 || parts.month > 12) {
      return std::nullopt;
    }
    parts.precision = 2;
    if (pos < text.size() && text[pos] == '-') {
      ++pos;
      if (!readDigits(text, pos, 2, parts.day) || parts.day < 1 ||
          parts.day > daysInMonth(parts.year, parts.month)) {
        return std::nullopt;
      }
      parts.precision = 3;
    }
  }
  if (pos < text.size() && text[pos] == 'T') {
    if (kind == Item::Kind::kDate) return std::nullopt;
    ++pos;
    if (pos < text.size()) {
      if (!parseTimeFields(text, pos, parts)) return std::nullopt;
    }
  }
  if (pos < text.size()) {
    if (kind == Item::Kind::kDate) return std::nullopt;
    if (text[pos] == 'Z') {
      parts.has_tz = true;
      ++pos;
    } else if (text[pos] == '+' || text[pos] == '-') {
      int sign = text[pos] == '-' ? -1 : 1;
      ++pos;
      int hours = 0, minutes = 0;
      if (!readDigits(text, pos, 2, hours) || pos >= text.size() || text[pos] != ':') {
        return std::nullopt;
      }
      ++pos;
      if (!readDigits(text, pos, 2, minutes)) return std::nullopt;
      parts.has_tz = true;
      parts.tz_minutes = sign * (hours * 60 + minutes);
    }
  }
  if (pos != text.size()) return std::nullopt;
  return parts;
}

std::string formatDateTime(const DateTimeParts& p, Item::Kind kind) {
  char buffer[64];
  std::string out;
  if (kind != Item::Kind::kTime) {
    std::snprintf(buffer, sizeof buffer, "%04d", p.year);
    out = buffer;
    if (p.precision >= 2) {
      std::snprintf(buffer, sizeof buffer, "-%02d", p.month);
      out += buffer;
    }
    if (p.precision >= 3) {
      std::snprintf(buffer, sizeof buffer, "-%02d", p.day);
      out += buffer;
    }
    if (kind == Item::Kind::kDate) return out;
    if (p.precision >= 4) out += 'T';
  }
  if (p.precision >= 4) {
    std::snprintf(buffer, sizeof buffer, "%02d", p.hour);
    out += buffer;
  }
  if (p.precision >= 5) {
    std::snprintf(buffer, sizeof buffer, ":%02d", p.minute);
    out += buffer;
  }
  if (p.precision >= 6) {
    std::snprintf(buffer, sizeof buffer, ":%02d", p.second);
    out += buffer;
  }
  if (p.precision >= 7) {
    std::snprintf(buffer, sizeof buffer, ".%03d", p.millis);
    out += buffer;
  }
  if (kind == Item::Kind::kDateTime && p.has_tz && p.precision >= 4) {
    if (p.tz_minutes == 0) {
      out += 'Z';
    } else {
      int tz = std::abs(p.tz_minutes);
      std::snprintf(buffer, sizeof buffer, "%c%02d:%02d", p.tz_minutes < 0 ? '-' : '+', tz / 60,
                    tz % 60);
      out += buffer;
    }
  }
  return out;
}

std::optional<int> compareDateTime(const DateTimeParts& a, const DateTimeParts& b) {
  DateTimeParts x = a, y = b;
  // With times and time zones on both sides, compare in UTC.
  if (x.precision >= 4 && y.precision >= 4 && (x.has_tz || y.has_tz)) {
    // One side with a time zone and the other without: the order is unknown.
    if (x.has_tz != y.has_tz) return std::nullopt;
    int64_t x_ms = epochMillis(x);
    int64_t y_ms = epochMillis(y);
    x.has_tz = y.has_tz = false;
    setFromEpochMillis(x, x_ms);
    setFromEpochMillis(y, y_ms);
  }
  int xs[] = {x.year, x.month, x.day, x.hour, x.minute, x.second, x.millis};
  int ys[] = {y.year, y.month, y.day, y.hour, y.minute, y.second, y.millis};
  int first = x.has_date ? 0 : 3;
  for (int field = first; field < 7; ++field) {
    bool in_x = field < x.precision;
    bool in_y = field < y.precision;
    // Seconds and milliseconds count as one precision (6 vs 7 compare as decimals).
    if (field == 6 && (in_x || in_y) && x.precision >= 6 && y.precision >= 6) {
      in_x = in_y = true;
    }
    if (!in_x || !in_y) {
      if (in_x == in_y) return 0;
      return std::nullopt;
    }
    if (xs[field] != ys[field]) return xs[field] < ys[field] ? -1 : 1;
  }
  return 0;
}

bool addToDateTime(DateTimeParts& p, double amount, std::string_view unit) {
  std::string_view u = calendarToUcum(unit);
  // 10,000 years are 3.2e14 ms: a larger amount leaves the years 0001-9999 whatever its unit.
  // Mark the result out of range (the caller reports it) before anything can overflow.
  if (!(std::fabs(amount) < 1e15)) {
    p.year = amount < 0 ? 0 : 10000;
    return u == "a" || u == "mo" || u == "wk" || u == "d" || u == "h" || u == "min" || u == "s" ||
           u == "ms";
  }
  auto whole = static_cast<int64_t>(std::trunc(amount));
  if ((u == "a" || u == "mo") && (whole > 1'000'000 || whole < -1'000'000)) {
    p.year = whole < 0 ? 0 : 10000;
    return true;
  }
  if (u == "a" || u == "mo") {
    int64_t months = u == "a" ? whole * 12 : whole;
    int64_t total = p.year * 12LL + (p.month - 1) + months;
    p.year = static_cast<int>(total / 12);
    p.month = static_cast<int>(total % 12) + 1;
    if (p.day > daysInMonth(p.year, p.month)) p.day = daysInMonth(p.year, p.month);
    return true;
  }
  int64_t factor;
  if (u == "wk") {
    factor = 7 * 86400000LL;
  } else if (u == "d") {
    factor = 86400000LL;
  } else if (u == "h") {
    factor = 3600000LL;
  } else if (u == "min") {
    factor = 60000LL;
  } else if (u == "s") {
    // The spec ignores the decimal part of time-valued quantities above milliseconds.
    factor = 1000;
  } else if (u == "ms") {
    factor = 1;
  } else {
    return false;
  }
  constexpr int64_t kTenThousandYears = 316'000'000'000'000LL;  // ms, rounded down
  __int128 wide_ms = static_cast<__int128>(whole) * factor;
  if (wide_ms > kTenThousandYears || wide_ms < -kTenThousandYears) {
    p.year = wide_ms < 0 ? 0 : 10000;
    return true;
  }
  int64_t ms = static_cast<int64_t>(wide_ms);
  // Adding below the value's precision is done in whole units of that precision.
  if (p.has_date && p.precision <= 3) {
    int64_t days = ms / 86400000LL;
    if (p.precision < 3) {
      if (p.precision == 2) {
        int64_t months = days / 30;
        int64_t total = p.year * 12LL + (p.month - 1) + months;
        p.year = static_cast<int>(total / 12);
        p.month = static_cast<int>(total % 12) + 1;
      } else {
        p.year += static_cast<int>(days / 365);
      }
      return true;
    }
    ms = days * 86400000LL;
  }
  bool tz = p.has_tz;
  p.has_tz = false;
  setFromEpochMillis(p, epochMillis(p) + ms);
  p.has_tz = tz;
  return true;
}

// ---- UCUM subset ----------------------------------------------------------------------------

std::string_view calendarToUcum(std::string_view unit) {
  static constexpr std::pair<std::string_view, std::string_view> kMap[] = {
      {"year", "a"},       {"years", "a"},         {"month", "mo"},   {"months", "mo"},
      {"week", "wk"},      {"weeks", "wk"},        {"day", "d"},      {"days", "d"},
      {"hour", "h"},       {"hours", "h"},         {"minute", "min"}, {"minutes", "min"},
      {"second", "s"},     {"seconds", "s"},       {"millisecond", "ms"},
      {"milliseconds", "ms"}};
  // Called for every quantity comparison: UCUM codes ("kg", "[lb_av]", "mg/dL") are rejected
  // by length and first letter before the table is scanned.
  if (unit.size() < 3 || unit.size() > 12) return unit;
  switch (unit[0]) {
    case 'y': case 'm': case 'w': case 'd': case 'h': case 's': break;
    default: return unit;
  }
  for (const auto& [word, code] : kMap) {
    if (word == unit) return code;
  }
  return unit;
}

bool isCalendarKeyword(std::string_view unit) { return calendarToUcum(unit) != unit; }

namespace {

// canonical = value * factor + offset (the offset is non-zero for the temperature scales only).
struct UcumUnit {
  std::string_view code;
  double factor;
  std::string_view dimension;
  double offset = 0;
};

const UcumUnit* findUnit(std::string_view unit) {
  static constexpr UcumUnit kUnits[] = {
      {"ug", 1e-6, "g"},     {"mcg", 1e-6, "g"},      {"mg", 1e-3, "g"},
      {"g", 1, "g"},         {"kg", 1e3, "g"},        {"[lb_av]", 453.59237, "g"},
      {"[oz_av]", 28.349523125, "g"},
      {"ms", 1e-3, "s"},     {"s", 1, "s"},           {"min", 60, "s"},
      {"h", 3600, "s"},      {"d", 86400, "s"},       {"wk", 604800, "s"},
      {"mo", 2629800, "s"},  {"a", 31557600, "s"},
      {"mm", 1e-3, "m"},     {"cm", 1e-2, "m"},       {"m", 1, "m"},
      {"km", 1e3, "m"},      {"[in_i]", 0.0254, "m"}, {"[ft_i]", 0.3048, "m"},
      {"[yd_i]", 0.9144, "m"}, {"[mi_i]", 1609.344, "m"},
      {"mL", 1e-3, "L"},     {"dL", 0.1, "L"},        {"L", 1, "L"},  {"l", 1, "L"},
      {"1", 1, "1"},         {"%", 0.01, "1"},
      // Temperatures in kelvin: UCUM Cel is K - 273.15, [degF] is 5/9 K from -459.67 degF.
      {"K", 1, "K"},         {"Cel", 1, "K", 273.15},
      {"[degF]", 5.0 / 9.0, "K", 459.67 * 5.0 / 9.0},
      {"mmol/L", 1, "mmol/L"}, {"mg/dL", 1, "mg/dL"},
  };
  std::string_view code = calendarToUcum(unit);
  if (code.empty()) code = "1";
  for (const auto& entry : kUnits) {
    if (entry.code == code) return &entry;
  }
  return nullptr;
}

}  // namespace

std::optional<Canonical> canonicalQuantity(double value, std::string_view unit) {
  const UcumUnit* entry = findUnit(unit);
  if (entry == nullptr) return std::nullopt;
  return Canonical{value * entry->factor + entry->offset, entry->dimension};
}

std::optional<double> fromCanonical(double canonical, std::string_view unit) {
  const UcumUnit* entry = findUnit(unit);
  if (entry == nullptr) return std::nullopt;
  return (canonical - entry->offset) / entry->factor;
}

Item::Kind primitiveKindOf(std::string_view type, bool* known) {
  // Called for every primitive value the evaluator looks at: dispatch on the first letter.
  using K = Item::Kind;
  *known = true;
  switch (type.empty() ? '\0' : type[0]) {
    case 'b':
      if (type == "boolean") return K::kBoolean;
      if (type == "base64Binary") return K::kString;
      break;
    case 'c':
      if (type == "code" || type == "canonical") return K::kString;
      break;
    case 'd':
      if (type == "date") return K::kDate;
      if (type == "dateTime") return K::kDateTime;
      if (type == "decimal") return K::kDecimal;
      break;
    case 'i':
      if (type == "id") return K::kString;
      if (type == "integer") return K::kInteger;
      if (type == "instant") return K::kDateTime;
      break;
    case 'm':
      if (type == "markdown") return K::kString;
      break;
    case 'o':
      if (type == "oid") return K::kString;
      break;
    case 'p':
      if (type == "positiveInt") return K::kInteger;
      break;
    case 's':
      if (type == "string") return K::kString;
      break;
    case 't':
      if (type == "time") return K::kTime;
      break;
    case 'u':
      if (type == "uri" || type == "url" || type == "uuid") return K::kString;
      if (type == "unsignedInt") return K::kInteger;
      break;
    case 'x':
      if (type == "xhtml") return K::kString;
      break;
    case 'S':
      if (type.rfind("System.", 0) == 0) {
        std::string_view name = type.substr(7);
        if (name == "String") return K::kString;
        if (name == "Boolean") return K::kBoolean;
        if (name == "Integer") return K::kInteger;
        if (name == "Decimal") return K::kDecimal;
        if (name == "Date") return K::kDate;
        if (name == "DateTime") return K::kDateTime;
        if (name == "Time") return K::kTime;
      }
      break;
    default: break;
  }
  *known = false;
  return K::kNode;
}

// ---- output ---------------------------------------------------------------------------------

std::string toLiteral(const Item& item) {
  switch (item.kind()) {
    case Item::Kind::kDate:
    case Item::Kind::kDateTime: return "@" + item.text();
    case Item::Kind::kTime: return "@T" + item.text();
    default: return item.primitiveText().value_or(std::string());
  }
}

std::string toJson(const Collection& collection) {
  std::string out = "[";
  bool first = true;
  for (const Item& item : collection) {
    if (!first) out += ',';
    first = false;
    switch (item.kind()) {
      case Item::Kind::kNode:
        if (item.value() == nullptr) {
          out += "null";
        } else {
          json::serializeTo(*item.value(), out);
        }
        break;
      case Item::Kind::kBoolean: out += item.booleanValue() ? "true" : "false"; break;
      case Item::Kind::kInteger: out += std::to_string(item.integerValue()); break;
      case Item::Kind::kDecimal: out += formatDecimal(item.decimalValue()); break;
      case Item::Kind::kString:
        if (item.typeName() == "TypeInfo") {
          // type() results: {"namespace": "FHIR", "name": "Patient"}.
          std::string_view full = item.text();
          size_t dot = full.find('.');
          out += "{\"namespace\":\"";
          json::appendEscaped(full.substr(0, dot), out);
          out += "\",\"name\":\"";
          json::appendEscaped(dot == std::string_view::npos ? std::string_view() : full.substr(dot + 1), out);
          out += "\"}";
          break;
        }
        out += '"';
        json::appendEscaped(item.text(), out);
        out += '"';
        break;
      case Item::Kind::kDate:
      case Item::Kind::kDateTime:
      case Item::Kind::kTime:
      case Item::Kind::kQuantity:
        out += '"';
        json::appendEscaped(toLiteral(item), out);
        out += '"';
        break;
    }
  }
  out += ']';
  return out;
}

}  // namespace fhir::fhirpath
