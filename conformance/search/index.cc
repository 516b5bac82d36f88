// SPDX-License-Identifier: Apache-2.0
// Index rows: evaluating each parameter's expression and turning the items into typed values.
#include <cctype>
#include <mutex>

#include "conformance/search/internal.h"
#include "conformance/search/search.h"

namespace fhir::search {
namespace {

// Base letters of U+0100..U+017F (Latin Extended-A), lower case, by runs.
const std::string* latinExtendedA() {
  static const std::vector<std::string> table = [] {
    std::vector<std::string> t;
    const std::pair<int, const char*> runs[] = {
        {6, "a"}, {8, "c"}, {4, "d"}, {10, "e"}, {8, "g"}, {4, "h"}, {10, "i"}, {2, "ij"},
        {2, "j"}, {3, "k"}, {10, "l"}, {9, "n"}, {6, "o"}, {2, "oe"}, {6, "r"}, {8, "s"},
        {6, "t"}, {12, "u"}, {2, "w"}, {3, "y"}, {6, "z"}, {1, "s"}};
    for (const auto& [n, s] : runs) {
      for (int i = 0; i < n; ++i) t.emplace_back(s);
    }
    return t;
  }();
  return table.data();
}

// Base letters of U+00C0..U+00FF; "" keeps the character (× and ÷).
const char* const kLatin1[64] = {
    "a", "a", "a", "a", "a", "a", "ae", "c", "e", "e", "e", "e", "i", "i", "i", "i",
    "d", "n", "o", "o", "o", "o", "o", "",  "o", "u", "u", "u", "u", "y", "th", "ss",
    "a", "a", "a", "a", "a", "a", "ae", "c", "e", "e", "e", "e", "i", "i", "i", "i",
    "d", "n", "o", "o", "o", "o", "o", "",  "o", "u", "u", "u", "u", "y", "th", "y"};

}  // namespace

std::string normalizeString(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  bool space = false;
  for (size_t i = 0; i < text.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (std::isspace(c)) {
      space = !out.empty();
      continue;
    }
    if (space) {
      out += ' ';
      space = false;
    }
    if (c < 0x80) {
      out += static_cast<char>(std::tolower(c));
      continue;
    }
    if ((c & 0xE0) == 0xC0 && i + 1 < text.size()) {
      unsigned cp = ((c & 0x1Fu) << 6) | (static_cast<unsigned char>(text[i + 1]) & 0x3Fu);
      const char* base = nullptr;
      if (cp >= 0xC0 && cp <= 0xFF) base = kLatin1[cp - 0xC0];
      if (cp >= 0x100 && cp <= 0x17F) base = latinExtendedA()[cp - 0x100].c_str();
      if (base != nullptr && *base != '\0') {
        out += base;
        ++i;
        continue;
      }
    }
    out += static_cast<char>(c);
  }
  return out;
}

namespace {

int64_t daysFromCivil(int64_t y, unsigned m, unsigned d) {  // H. Hinnant's algorithm
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

bool digits(std::string_view s, size_t pos, size_t n, int& out) {
  if (pos + n > s.size()) return false;
  out = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (!std::isdigit(static_cast<unsigned char>(s[i]))) return false;
    out = out * 10 + (s[i] - '0');
  }
  return true;
}

constexpr int64_t kSecond = 1000000;
constexpr int64_t kDay = 86400 * kSecond;

}  // namespace

std::optional<DateRange> parseDateRange(std::string_view s) {
  int year = 0, month = 1, day = 1, hour = 0, minute = 0, second = 0;
  if (!digits(s, 0, 4, year) || year < 1) return std::nullopt;
  DateRange r;
  auto start = [&](int m, int d) { return daysFromCivil(year, m, d) * kDay; };
  if (s.size() == 4) {
    r.low = start(1, 1);
    r.high = daysFromCivil(year + 1, 1, 1) * kDay - 1;
    r.precision = 4;
    return r;
  }
  if (s.size() < 7 || s[4] != '-' || !digits(s, 5, 2, month) || month < 1 || month > 12) return std::nullopt;
  if (s.size() == 7) {
    r.low = start(month, 1);
    r.high = (month == 12 ? daysFromCivil(year + 1, 1, 1) : daysFromCivil(year, month + 1, 1)) * kDay - 1;
    r.precision = 7;
    return r;
  }
  if (s.size() < 10 || s[7] != '-' || !digits(s, 8, 2, day) || day < 1 || day > 31) return std::nullopt;
  if (s.size() == 10) {
    r.low = start(month, day);
    r.high = r.low + kDay - 1;
    r.precision = 10;
    return r;
  }
  if (s[10] != 'T' || !digits(s, 11, 2, hour) || s.size() < 16 || s[13] != ':' ||
      !digits(s, 14, 2, minute) || hour > 23 || minute > 59) {
    return std::nullopt;
  }
  size_t pos = 16;
  int precision = 16;
  int64_t fraction = 0;
  int64_t unit = 60 * kSecond;
  if (pos < s.size() && s[pos] == ':') {
    if (!digits(s, pos + 1, 2, second) || second > 60) return std::nullopt;
    pos += 3;
    precision = 19;
    unit = kSecond;
    if (pos < s.size() && s[pos] == '.') {
      size_t n = 0;
      int64_t scale = kSecond;
      ++pos;
      while (pos < s.size() && std::isdigit(static_cast<unsigned char>(s[pos]))) {
        if (n < 6) {
          scale /= 10;
          fraction += (s[pos] - '0') * scale;
        }
        ++n;
        ++pos;
      }
      if (n == 0) return std::nullopt;
      precision = 20 + static_cast<int>(std::min<size_t>(n, 6));
      unit = n >= 6 ? 1 : scale;
    }
  }
  int64_t offset = 0;
  if (pos < s.size()) {
    if (s[pos] == 'Z' && pos + 1 == s.size()) {
    } else if ((s[pos] == '+' || s[pos] == '-') && pos + 6 == s.size() && s[pos + 3] == ':') {
      int oh = 0, om = 0;
      if (!digits(s, pos + 1, 2, oh) || !digits(s, pos + 4, 2, om)) return std::nullopt;
      offset = (oh * 3600 + om * 60) * kSecond * (s[pos] == '-' ? -1 : 1);
    } else {
      return std::nullopt;
    }
  }
  r.low = start(month, day) + ((hour * 60 + minute) * 60 + second) * kSecond + fraction - offset;
  r.high = r.low + unit - 1;
  r.precision = precision;
  return r;
}

ParsedReference parseReference(std::string_view ref) {
  ParsedReference out;
  if (ref.empty() || ref.front() == '#') return out;
  std::string_view path = ref;
  size_t scheme = ref.find("://");
  if (scheme != std::string_view::npos) out.url = std::string(ref);
  else if (ref.rfind("urn:", 0) == 0) {
    out.url = std::string(ref);
    return out;
  }
  if (size_t q = path.find_first_of("?#"); q != std::string_view::npos) path = path.substr(0, q);
  std::vector<std::string_view> segments;
  size_t from = scheme == std::string_view::npos ? 0 : scheme + 3;
  while (from <= path.size()) {
    size_t slash = path.find('/', from);
    if (slash == std::string_view::npos) slash = path.size();
    segments.push_back(path.substr(from, slash - from));
    from = slash + 1;
  }
  if (segments.size() >= 4 && segments[segments.size() - 2] == "_history") segments.resize(segments.size() - 2);
  if (segments.size() >= 2) {
    std::string_view type = segments[segments.size() - 2];
    if (!type.empty() && std::isupper(static_cast<unsigned char>(type.front()))) {
      out.type = type;
      out.id = segments.back();
    }
  }
  return out;
}

namespace {

// Stub resources {"resourceType": T} for resolve() during extraction: a reference's type comes
// from its text, nothing is read from a store.
class Stubs {
 public:
  std::optional<fhirpath::Item> get(std::string_view type) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = docs_.find(type);
    if (it == docs_.end()) {
      auto doc = std::make_unique<json::Document>();
      doc->SetObject();
      json::addString(*doc, "resourceType", type, doc->GetAllocator());
      it = docs_.emplace(std::string(type), std::move(doc)).first;
    }
    return fhirpath::Item::node(it->second.get(), it->first);
  }

 private:
  std::mutex mutex_;
  std::map<std::string, std::unique_ptr<json::Document>, std::less<>> docs_;
};

Stubs& stubs() {
  static Stubs* instance = new Stubs();
  return *instance;
}

std::string str(const json::Value* v) {
  return v != nullptr && json::isString(*v) ? std::string(json::stringView(*v)) : std::string();
}

const json::Value* member(const fhirpath::Item& item, std::string_view key) {
  const json::Value* v = item.value();
  return v != nullptr && v->IsObject() ? json::find(*v, key) : nullptr;
}

template <class F>
void forEach(const json::Value* v, F&& f) {
  if (v == nullptr) return;
  if (v->IsArray()) {
    for (const json::Value& e : v->GetArray()) f(e);
  } else {
    f(*v);
  }
}

class Extractor {
 public:
  Extractor(const std::string& code, ParamType type, std::vector<IndexRow>& rows)
      : code_(code), type_(type), rows_(rows) {}

  void add(const fhirpath::Item& item) {
    switch (type_) {
      case ParamType::kToken: token(item); break;
      case ParamType::kString: string(item); break;
      case ParamType::kDate: date(item); break;
      case ParamType::kReference: reference(item); break;
      case ParamType::kUri: uri(item); break;
      case ParamType::kNumber:
      case ParamType::kQuantity: number(item); break;
      default: break;
    }
  }

 private:
  IndexRow& row() {
    IndexRow& r = rows_.emplace_back();
    r.param = code_;
    r.type = type_;
    return r;
  }

  void coding(const json::Value& c, const std::string& text) {
    IndexRow& r = row();
    r.system = str(json::find(c, "system"));
    r.code = str(json::find(c, "code"));
    std::string display = normalizeString(str(json::find(c, "display")));
    r.text = text.empty() ? display : display.empty() ? text : text + " " + display;
  }

  void token(const fhirpath::Item& item) {
    std::string_view t = item.typeName();
    if (item.isNode() && item.value() != nullptr && item.value()->IsObject()) {
      const json::Value& v = *item.value();
      if (t == "Coding") {
        coding(v, "");
      } else if (t == "CodeableConcept") {
        std::string text = normalizeString(str(json::find(v, "text")));
        const json::Value* codings = json::find(v, "coding");
        if (codings == nullptr || !codings->IsArray() || codings->Empty()) {
          if (!text.empty()) row().text = text;
        } else {
          for (const json::Value& c : codings->GetArray()) coding(c, text);
        }
      } else if (t == "Identifier") {
        std::string system = str(json::find(v, "system"));
        std::string value = str(json::find(v, "value"));
        const json::Value* type = json::find(v, "type");
        std::string text = type != nullptr ? normalizeString(str(json::find(*type, "text"))) : "";
        const json::Value* codings = type != nullptr ? json::find(*type, "coding") : nullptr;
        bool typed = false;
        forEach(codings, [&](const json::Value& c) {
          IndexRow& r = row();
          r.system = system;
          r.code = value;
          r.text = text;
          r.type_system = str(json::find(c, "system"));
          r.type_code = str(json::find(c, "code"));
          typed = true;
        });
        if (!typed) {
          IndexRow& r = row();
          r.system = system;
          r.code = value;
          r.text = text;
        }
      } else if (t == "ContactPoint") {
        IndexRow& r = row();
        r.system = str(json::find(v, "system"));
        r.code = str(json::find(v, "value"));
      }
      return;
    }
    if (auto text = item.primitiveText()) row().code = *text;
  }

  void stringValue(const std::string& s) {
    if (s.empty()) return;
    IndexRow& r = row();
    r.value = s;
    r.normalized = normalizeString(s);
  }

  void string(const fhirpath::Item& item) {
    std::string_view t = item.typeName();
    if (item.isNode() && item.value() != nullptr && item.value()->IsObject()) {
      const char* const kName[] = {"family", "given", "prefix", "suffix", "text"};
      const char* const kAddress[] = {"line", "city", "district", "state", "postalCode", "country", "text"};
      auto parts = [&](const auto& keys) {
        for (const char* key : keys) {
          forEach(member(item, key), [&](const json::Value& e) { stringValue(str(&e)); });
        }
      };
      if (t == "HumanName") parts(kName);
      else if (t == "Address") parts(kAddress);
      return;
    }
    if (auto text = item.primitiveText()) stringValue(*text);
  }

  void dateRange(const std::optional<DateRange>& range) {
    if (!range) return;
    IndexRow& r = row();
    r.low = range->low;
    r.high = range->high;
    r.precision = range->precision;
  }

  void date(const fhirpath::Item& item) {
    std::string_view t = item.typeName();
    if (item.isNode() && item.value() != nullptr && item.value()->IsObject()) {
      if (t == "Period") {
        auto s = parseDateRange(str(member(item, "start")));
        auto e = parseDateRange(str(member(item, "end")));
        if (!s && !e) return;
        IndexRow& r = row();
        r.low = s ? s->low : kMinInstant;
        r.high = e ? e->high : kMaxInstant;
        r.precision = 0;
      } else if (t == "Timing") {
        forEach(member(item, "event"), [&](const json::Value& e) { dateRange(parseDateRange(str(&e))); });
      }
      return;
    }
    if (auto text = item.primitiveText()) dateRange(parseDateRange(*text));
  }

  void reference(const fhirpath::Item& item) {
    std::string_view t = item.typeName();
    if (item.isNode() && item.value() != nullptr && item.value()->IsObject()) {
      if (t != "Reference") return;
      std::string ref = str(member(item, "reference"));
      std::string type = str(member(item, "type"));
      if (!ref.empty()) {
        ParsedReference p = parseReference(ref);
        if (!p.type.empty() || !p.url.empty()) {
          IndexRow& r = row();
          r.ref_type = p.type.empty() ? type : p.type;
          r.ref_id = p.id;
          r.ref_url = p.url;
        }
      }
      if (const json::Value* identifier = member(item, "identifier")) {
        IndexRow& r = row();
        r.ref_type = type;
        r.system = str(json::find(*identifier, "system"));
        r.code = str(json::find(*identifier, "value"));
      }
      return;
    }
    // canonical / uri references (MeasureReport.measure)
    if (auto text = item.primitiveText()) {
      ParsedReference p = parseReference(*text);
      IndexRow& r = row();
      r.ref_type = p.type;
      r.ref_id = p.id;
      r.ref_url = *text;
    }
  }

  void uri(const fhirpath::Item& item) {
    if (auto text = item.primitiveText()) row().value = *text;
  }

  void number(const fhirpath::Item& item) {
    std::string text;
    std::string system, code;
    if (item.isNode() && item.value() != nullptr && item.value()->IsObject()) {
      const json::Value* value = member(item, "value");
      if (value == nullptr || !json::isNumber(*value)) return;
      text = json::numberText(*value);
      system = str(member(item, "system"));
      code = str(member(item, "code"));
      if (code.empty()) code = str(member(item, "unit"));
    } else if (auto t = item.primitiveText()) {
      text = *t;
    }
    if (text.empty()) return;
    IndexRow& r = row();
    r.number = text;
    r.number_value = std::strtod(text.c_str(), nullptr);
    r.system = system;
    r.code = code;
  }

  const std::string& code_;
  ParamType type_;
  std::vector<IndexRow>& rows_;
};

}  // namespace

std::vector<IndexRow> extractIndex(const Registry& registry, const json::Value& resource,
                                   std::vector<std::string>* errors) {
  std::vector<IndexRow> rows;
  auto type = json::getString(resource, "resourceType");
  if (!type) return rows;
  fhirpath::EvaluationContext ctx;
  ctx.model = registry.model();
  ctx.resource = &resource;
  ctx.as_requires_singleton = false;  // R4 expressions were written for filtering as()
  ctx.resolve = [](std::string_view reference) -> std::optional<fhirpath::Item> {
    ParsedReference p = parseReference(reference);
    if (p.type.empty()) return std::nullopt;
    return stubs().get(p.type);
  };
  for (const BoundParam* param : registry.forType(*type)) {
    if (!param->compiled) continue;
    auto result = fhirpath::evaluate(*param->compiled, resource, ctx);
    if (!result.ok()) {
      if (errors != nullptr) errors->push_back(param->def->code + ": " + result.message());
      continue;
    }
    Extractor extractor(param->def->code, param->def->type, rows);
    for (const fhirpath::Item& item : *result) extractor.add(item);
  }
  return rows;
}

}  // namespace fhir::search
