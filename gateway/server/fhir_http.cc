// SPDX-License-Identifier: Apache-2.0
#include "gateway/server/fhir_http.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <ctime>

#include "conformance/json/json.h"

namespace fhir::gateway::fhirhttp {
namespace {

std::string lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

std::string_view trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

// Splits at `separator`, trimming each part.
std::vector<std::string_view> split(std::string_view text, char separator) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find(separator, start);
    if (end == std::string_view::npos) end = text.size();
    parts.push_back(trim(text.substr(start, end - start)));
    start = end + 1;
  }
  return parts;
}

bool isJsonType(const std::string& type) {
  return type == "json" || type == "application/json" || type == "application/fhir+json" ||
         type == "application/json+fhir" || type == "text/json";
}

// Whether one Accept media range (with parameters) admits JSON; q=0 admits nothing.
bool acceptsJson(std::string_view range) {
  auto parts = split(range, ';');
  for (size_t index = 1; index < parts.size(); ++index) {
    const std::string parameter = lower(parts[index]);
    if (parameter == "q=0" || parameter == "q=0.0" || parameter == "q=0.00" || parameter == "q=0.000") return false;
  }
  const std::string type = lower(parts[0]);
  return isJsonType(type) || type == "*/*" || type == "application/*" || type == "text/*";
}

// A version named in an entity tag: W/"3", "3" or 3.
std::string tagVersion(std::string_view tag) {
  tag = trim(tag);
  if (tag.starts_with("W/") || tag.starts_with("w/")) tag.remove_prefix(2);
  if (tag.size() >= 2 && tag.front() == '"' && tag.back() == '"') tag = tag.substr(1, tag.size() - 2);
  return std::string(tag);
}

int64_t daysFromCivil(int64_t year, unsigned month, unsigned day) {
  year -= month <= 2;
  const int64_t era = (year >= 0 ? year : year - 399) / 400;
  const auto yoe = static_cast<unsigned>(year - era * 400);
  const unsigned doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

}  // namespace

std::optional<Answer> negotiate(const http::Request& request, Parameters& parameters, bool& pretty) {
  pretty = false;
  std::optional<std::string> format;
  Parameters kept;
  for (auto& [name, value] : parameters) {
    if (name == "_format") {
      format = value;
    } else if (name == "_pretty") {
      if (value != "true" && value != "false") return outcomeAnswer(400, "invalid", "_pretty must be true or false, not '" + value + "'");
      pretty = value == "true";
    } else {
      kept.emplace_back(std::move(name), std::move(value));
    }
  }
  parameters = std::move(kept);
  if (format) {
    // _format overrides Accept (R4 http.html#mime-type).
    const std::string type = lower(split(*format, ';')[0]);
    if (isJsonType(type)) return std::nullopt;
    return outcomeAnswer(406, "not-supported", "_format=" + *format + ": this gateway answers JSON only (_format=json)");
  }
  const std::string* accept = request.head.header("accept");
  if (accept == nullptr || trim(*accept).empty()) return std::nullopt;
  for (std::string_view range : split(*accept, ',')) {
    if (acceptsJson(range)) return std::nullopt;
  }
  return outcomeAnswer(406, "not-supported",
                       "Accept: " + *accept + ": this gateway answers application/fhir+json only (no XML)");
}

void addVersionHeaders(Access& access, int64_t version, std::string_view last_updated) {
  access.headers.emplace_back("ETag", "W/\"" + std::to_string(version) + "\"");
  if (auto ms = parseInstantMs(last_updated)) access.headers.emplace_back("Last-Modified", httpDate(*ms / 1000));
}

bool notModified(const http::Request& request, int64_t version, std::string_view last_updated) {
  if (const std::string* none_match = request.head.header("if-none-match")) {
    for (std::string_view tag : split(*none_match, ',')) {
      if (trim(tag) == "*" || tagVersion(tag) == std::to_string(version)) return true;
    }
    return false;  // RFC 9110 13.1.3: If-Modified-Since is ignored when If-None-Match is present
  }
  if (const std::string* since = request.head.header("if-modified-since")) {
    auto date = parseHttpDate(*since);
    auto updated = parseInstantMs(last_updated);
    if (date && updated) return *updated / 1000 <= *date;
  }
  return false;
}

std::optional<std::string> ifMatch(const http::Request& request) {
  const std::string* header = request.head.header("if-match");
  if (header == nullptr) return std::nullopt;
  if (trim(*header) == "*") return std::string();
  return tagVersion(*header);
}

Return preferReturn(const http::Request& request) {
  const std::string* prefer = request.head.header("prefer");
  if (prefer == nullptr) return Return::kRepresentation;
  for (std::string_view preference : split(*prefer, ',')) {
    for (std::string_view part : split(preference, ';')) {
      const std::string text = lower(part);
      if (text == "return=minimal") return Return::kMinimal;
      if (text == "return=operationoutcome") return Return::kOperationOutcome;
      if (text == "return=representation") return Return::kRepresentation;
    }
  }
  return Return::kRepresentation;
}

bool preferLenient(const http::Request& request) {
  const std::string* prefer = request.head.header("prefer");
  if (prefer == nullptr) return false;
  for (std::string_view preference : split(*prefer, ',')) {
    for (std::string_view part : split(preference, ';')) {
      if (lower(part) == "handling=lenient") return true;
    }
  }
  return false;
}

Answer shapedWrite(const http::Request& request, Answer written, const std::string& what) {
  switch (preferReturn(request)) {
    case Return::kRepresentation:
      return written;
    case Return::kMinimal:
      written.body.clear();
      return written;
    case Return::kOperationOutcome: {
      IssueList done;
      done.add(Issue{Severity::kInformation, "informational", what, {}, {}});
      written.body = toOperationOutcomeJson(done);
      return written;
    }
  }
  return written;
}

std::string prettyJson(const std::string& body) {
  if (body.empty()) return body;
  auto doc = json::parse(body);
  if (!doc.ok()) return body;
  return json::serializePretty(*doc);
}

std::string httpDate(int64_t epoch_seconds) {
  static constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  std::time_t seconds = static_cast<std::time_t>(epoch_seconds);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%s, %02d %s %04d %02d:%02d:%02d GMT", kDays[utc.tm_wday], utc.tm_mday,
                kMonths[utc.tm_mon], utc.tm_year + 1900, utc.tm_hour, utc.tm_min, utc.tm_sec);
  return buffer;
}

std::optional<int64_t> parseHttpDate(std::string_view text) {
  static constexpr const char* kFormats[] = {"%a, %d %b %Y %H:%M:%S GMT", "%A, %d-%b-%y %H:%M:%S GMT", "%a %b %e %H:%M:%S %Y"};
  const std::string value(trim(text));
  for (const char* format : kFormats) {
    std::tm utc{};
    const char* end = strptime(value.c_str(), format, &utc);
    if (end != nullptr && *end == '\0') {
      return daysFromCivil(utc.tm_year + 1900, static_cast<unsigned>(utc.tm_mon + 1), static_cast<unsigned>(utc.tm_mday)) * 86400 +
             utc.tm_hour * 3600 + utc.tm_min * 60 + utc.tm_sec;
    }
  }
  return std::nullopt;
}

std::optional<int64_t> positiveInteger(std::string_view text) {
  int64_t value = 0;
  if (text.empty() || text.size() > 18) return std::nullopt;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size() || value < 1) return std::nullopt;
  return value;
}

std::optional<int64_t> parseInstantMs(std::string_view text) {
  int year = 0, month = 1, day = 1, hour = 0, minute = 0, second = 0;
  auto digits = [&](size_t at, size_t count, int& out) {
    if (at + count > text.size()) return false;
    out = 0;
    for (size_t index = at; index < at + count; ++index) {
      if (!std::isdigit(static_cast<unsigned char>(text[index]))) return false;
      out = out * 10 + (text[index] - '0');
    }
    return true;
  };
  if (!digits(0, 4, year)) return std::nullopt;
  size_t at = 4;
  if (at < text.size()) {
    if (text[at] != '-' || !digits(at + 1, 2, month)) return std::nullopt;
    at += 3;
  }
  if (at < text.size()) {
    if (text[at] != '-' || !digits(at + 1, 2, day)) return std::nullopt;
    at += 3;
  }
  int64_t millis = 0;
  int64_t offset_seconds = 0;
  if (at < text.size()) {
    if (text[at] != 'T' || !digits(at + 1, 2, hour) || at + 3 >= text.size() || text[at + 3] != ':' ||
        !digits(at + 4, 2, minute)) {
      return std::nullopt;
    }
    at += 6;
    if (at < text.size() && text[at] == ':') {
      if (!digits(at + 1, 2, second)) return std::nullopt;
      at += 3;
      if (at < text.size() && text[at] == '.') {
        ++at;
        int64_t scale = 100;
        const size_t start = at;
        while (at < text.size() && std::isdigit(static_cast<unsigned char>(text[at]))) {
          millis += (text[at] - '0') * scale;
          scale /= 10;
          ++at;
        }
        if (at == start) return std::nullopt;
      }
    }
    if (at < text.size() && text[at] == 'Z') {
      ++at;
    } else if (at < text.size() && (text[at] == '+' || text[at] == '-')) {
      int offset_hours = 0, offset_minutes = 0;
      if (!digits(at + 1, 2, offset_hours) || at + 3 >= text.size() || text[at + 3] != ':' ||
          !digits(at + 4, 2, offset_minutes)) {
        return std::nullopt;
      }
      offset_seconds = (offset_hours * 3600 + offset_minutes * 60) * (text[at] == '+' ? 1 : -1);
      at += 6;
    }
  }
  if (at != text.size() || month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) {
    return std::nullopt;
  }
  const int64_t seconds = daysFromCivil(year, static_cast<unsigned>(month), static_cast<unsigned>(day)) * 86400 +
                          hour * 3600 + minute * 60 + second - offset_seconds;
  return seconds * 1000 + millis;
}

std::string isoMs(int64_t ms) {
  std::time_t seconds = static_cast<std::time_t>(ms / 1000);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", utc.tm_year + 1900, utc.tm_mon + 1,
                utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, static_cast<int>(ms % 1000));
  return buffer;
}

}  // namespace fhir::gateway::fhirhttp
