// SPDX-License-Identifier: Apache-2.0
#include "gateway/server/http_framing.h"

#include <algorithm>
#include <cstring>

namespace fhir::gateway::http {
namespace {

bool isTokenChar(char c) {
  if (std::isalnum(static_cast<unsigned char>(c))) return true;
  return std::strchr("!#$%&'*+-.^_`|~", c) != nullptr && c != '\0';
}

std::string_view trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

std::string lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The comma-separated elements of a list header, trimmed and lower-cased.
std::vector<std::string> listElements(std::string_view value) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= value.size()) {
    size_t comma = value.find(',', start);
    if (comma == std::string_view::npos) comma = value.size();
    std::string_view element = trim(value.substr(start, comma - start));
    if (!element.empty()) out.push_back(lower(element));
    start = comma + 1;
  }
  return out;
}

}  // namespace

const std::string* RequestHead::header(std::string_view lower_name) const {
  for (const auto& [name, value] : headers) {
    if (name == lower_name) return &value;
  }
  return nullptr;
}

std::optional<size_t> headEnd(std::string_view bytes) {
  for (size_t at = bytes.find('\n'); at != std::string_view::npos; at = bytes.find('\n', at + 1)) {
    if (at + 1 < bytes.size() && bytes[at + 1] == '\n') return at + 2;
    if (at + 2 < bytes.size() && bytes[at + 1] == '\r' && bytes[at + 2] == '\n') return at + 3;
  }
  return std::nullopt;
}

Result<RequestHead> parseHead(std::string_view head) {
  RequestHead out;
  std::vector<std::string_view> lines;
  size_t start = 0;
  while (start < head.size()) {
    size_t end = head.find('\n', start);
    if (end == std::string_view::npos) end = head.size();
    std::string_view line = head.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    lines.push_back(line);
    start = end + 1;
  }
  // RFC 9112 2.2: empty lines before the request line are ignored.
  size_t first = 0;
  while (first < lines.size() && lines[first].empty()) ++first;
  if (first == lines.size()) return Error{"the request has no request line"};
  const std::string_view request_line = lines[first];
  const size_t space1 = request_line.find(' ');
  const size_t space2 = space1 == std::string_view::npos ? space1 : request_line.find(' ', space1 + 1);
  if (space2 == std::string_view::npos || request_line.find(' ', space2 + 1) != std::string_view::npos) {
    return Error{"the request line is not 'METHOD target HTTP/1.x'"};
  }
  std::string_view method = request_line.substr(0, space1);
  std::string_view target = request_line.substr(space1 + 1, space2 - space1 - 1);
  std::string_view version = request_line.substr(space2 + 1);
  if (method.empty() || !std::all_of(method.begin(), method.end(), isTokenChar)) {
    return Error{"the request method is not a token"};
  }
  if (target.empty()) return Error{"the request target is empty"};
  for (char c : target) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) return Error{"the request target contains a control character"};
    // RFC 3986: a URI is ASCII; anything else arrives percent-encoded.
    if (static_cast<unsigned char>(c) >= 0x80) return Error{"the request target contains a byte that is not ASCII"};
  }
  auto digit = [](char c) { return c >= '0' && c <= '9'; };
  if (version.size() == 8 && version.substr(0, 5) == "HTTP/" && digit(version[5]) && version[6] == '.' &&
      digit(version[7]) && version[5] != '1') {
    // Well-formed (RFC 9112 2.3), another major version: the server answers 505, naming it (only
    // digits, nothing of the request is echoed beyond them).
    return Error{std::string(kUnsupportedVersion) + ": HTTP/" + version[5] + "." + version[7] +
                 " (this server speaks HTTP/1.0 and HTTP/1.1)"};
  }
  if (version.size() != 8 || version.substr(0, 7) != "HTTP/1." || !digit(version[7])) {
    return Error{"the protocol is not HTTP/1.x"};
  }
  out.method = std::string(method);
  out.target = std::string(target);
  out.minor_version = version[7] - '0';
  for (size_t index = first + 1; index < lines.size(); ++index) {
    std::string_view line = lines[index];
    if (line.empty()) break;
    if (line.front() == ' ' || line.front() == '\t') return Error{"obsolete line folding in header fields"};
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) return Error{"a header field has no name"};
    std::string_view name = line.substr(0, colon);
    if (!std::all_of(name.begin(), name.end(), isTokenChar)) return Error{"a header field name is not a token"};
    std::string_view value = trim(line.substr(colon + 1));
    for (char c : value) {
      if ((static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7f) {
        return Error{"header field '" + std::string(name) + "' contains a control character"};
      }
    }
    out.headers.emplace_back(lower(name), std::string(value));
  }
  return out;
}

Result<BodyFraming> bodyFraming(const RequestHead& head) {
  BodyFraming framing;
  bool has_encoding = false;
  std::vector<std::string> codings;
  std::optional<uint64_t> length;
  for (const auto& [name, value] : head.headers) {
    if (name == "transfer-encoding") {
      has_encoding = true;
      for (std::string& coding : listElements(value)) codings.push_back(std::move(coding));
    } else if (name == "content-length") {
      // A list of identical values is allowed (RFC 9110 8.6); anything else is an error.
      for (const std::string& element : listElements(value)) {
        if (element.empty() || element.size() > 18 ||
            !std::all_of(element.begin(), element.end(), [](char c) { return c >= '0' && c <= '9'; })) {
          return Error{"Content-Length '" + value + "' is not a number of bytes"};
        }
        const uint64_t parsed = std::stoull(element);
        if (length && *length != parsed) return Error{"the request has differing Content-Length values"};
        length = parsed;
      }
      if (!length) return Error{"Content-Length is empty"};
    }
  }
  if (has_encoding) {
    if (length) return Error{"the request has both Content-Length and Transfer-Encoding"};
    if (codings.size() != 1 || codings[0] != "chunked") {
      return Error{"Transfer-Encoding '" + std::string(*head.header("transfer-encoding")) + "' is not supported (only chunked)"};
    }
    framing.kind = BodyFraming::Kind::kChunked;
    return framing;
  }
  if (length) {
    framing.kind = BodyFraming::Kind::kLength;
    framing.length = *length;
  }
  return framing;
}

bool keepsAlive(const RequestHead& head) {
  bool close = false;
  bool keep_alive = false;
  for (const auto& [name, value] : head.headers) {
    if (name != "connection") continue;
    for (const std::string& option : listElements(value)) {
      if (option == "close") close = true;
      if (option == "keep-alive") keep_alive = true;
    }
  }
  if (close) return false;
  return head.minor_version >= 1 || keep_alive;
}

bool ChunkedDecoder::fail(std::string why) {
  state_ = State::kFailed;
  error_ = std::move(why);
  return false;
}

bool ChunkedDecoder::endOfSizeLine() {
  std::string_view line = line_;
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (size_t extension = line.find(';'); extension != std::string_view::npos) line = line.substr(0, extension);
  line = trim(line);
  if (line.empty()) return fail("a chunk has no size");
  if (line.size() > 15) return fail("a chunk size is too large");
  uint64_t size = 0;
  for (char c : line) {
    const int digit = hexValue(c);
    if (digit < 0) return fail("a chunk size is not hexadecimal");
    size = size * 16 + static_cast<uint64_t>(digit);
  }
  line_.clear();
  remaining_ = size;
  state_ = size == 0 ? State::kTrailer : State::kData;
  return true;
}

ChunkedDecoder::Step ChunkedDecoder::decode(std::string_view in, char* out, size_t capacity) {
  Step step;
  while (step.consumed < in.size() && state_ != State::kDone && state_ != State::kFailed) {
    const char c = in[step.consumed];
    switch (state_) {
      case State::kSize:
        ++step.consumed;
        if (c == '\n') {
          endOfSizeLine();
        } else if (line_.size() >= kMaxLineBytes) {
          fail("a chunk-size line is longer than " + std::to_string(kMaxLineBytes) + " bytes");
        } else {
          line_.push_back(c);
        }
        break;
      case State::kData: {
        if (step.produced == capacity) return step;
        const size_t take = static_cast<size_t>(
            std::min<uint64_t>(remaining_, std::min(in.size() - step.consumed, capacity - step.produced)));
        std::memcpy(out + step.produced, in.data() + step.consumed, take);
        step.consumed += take;
        step.produced += take;
        remaining_ -= take;
        if (remaining_ == 0) state_ = State::kDataEnd;
        break;
      }
      case State::kDataEnd:
        ++step.consumed;
        if (c == '\n') {
          if (!line_.empty() && line_ != "\r") {
            fail("a chunk's data is not followed by CRLF");
          } else {
            line_.clear();
            state_ = State::kSize;
          }
        } else if (c == '\r' && line_.empty()) {
          line_.push_back(c);
        } else {
          fail("a chunk's data is not followed by CRLF");
        }
        break;
      case State::kTrailer:
        ++step.consumed;
        if (c == '\n') {
          const bool empty = line_.empty() || line_ == "\r";
          line_.clear();
          if (empty) state_ = State::kDone;
        } else if (line_.size() >= kMaxLineBytes) {
          fail("a trailer line is longer than " + std::to_string(kMaxLineBytes) + " bytes");
        } else {
          line_.push_back(c);
        }
        break;
      case State::kDone:
      case State::kFailed:
        break;
    }
  }
  return step;
}

std::optional<std::string> percentDecode(std::string_view text, bool plus_is_space) {
  std::string out;
  out.reserve(text.size());
  for (size_t at = 0; at < text.size(); ++at) {
    const char c = text[at];
    if (c == '%') {
      if (at + 2 >= text.size()) return std::nullopt;
      const int high = hexValue(text[at + 1]);
      const int low = hexValue(text[at + 2]);
      if (high < 0 || low < 0) return std::nullopt;
      out.push_back(static_cast<char>(high * 16 + low));
      at += 2;
    } else {
      out.push_back(plus_is_space && c == '+' ? ' ' : c);
    }
  }
  return out;
}

Result<Target> parseTarget(std::string_view target) {
  if (target.empty() || target.front() != '/') return Error{"the request target '" + std::string(target) + "' is not a path"};
  Target out;
  const size_t mark = target.find('?');
  out.path = std::string(target.substr(0, mark));
  if (mark != std::string_view::npos) out.query = std::string(target.substr(mark + 1));
  if (size_t fragment = out.query.find('#'); fragment != std::string::npos) out.query.resize(fragment);
  size_t start = 1;
  while (start <= out.path.size()) {
    size_t slash = out.path.find('/', start);
    if (slash == std::string::npos) slash = out.path.size();
    std::string_view raw = std::string_view(out.path).substr(start, slash - start);
    if (!raw.empty()) {
      auto decoded = percentDecode(raw, false);
      if (!decoded) return Error{"the path segment '" + std::string(raw) + "' has a bad percent-escape"};
      out.segments.push_back(std::move(*decoded));
    }
    start = slash + 1;
  }
  return out;
}

Result<std::vector<std::pair<std::string, std::string>>> parseQuery(std::string_view query) {
  std::vector<std::pair<std::string, std::string>> out;
  size_t start = 0;
  while (start < query.size()) {
    size_t amp = query.find('&', start);
    if (amp == std::string_view::npos) amp = query.size();
    std::string_view pair = query.substr(start, amp - start);
    start = amp + 1;
    if (pair.empty()) continue;
    const size_t equals = pair.find('=');
    std::string_view raw_name = pair.substr(0, equals);
    std::string_view raw_value = equals == std::string_view::npos ? std::string_view() : pair.substr(equals + 1);
    auto name = percentDecode(raw_name, true);
    if (!name) return Error{"the query parameter name '" + std::string(raw_name) + "' has a bad percent-escape"};
    auto value = percentDecode(raw_value, true);
    if (!value) {
      return Error{"the value of query parameter '" + *name + "' has a bad percent-escape ('" + std::string(raw_value) + "')"};
    }
    out.emplace_back(std::move(*name), std::move(*value));
  }
  return out;
}

}  // namespace fhir::gateway::http
