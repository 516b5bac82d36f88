// SPDX-License-Identifier: Apache-2.0
#pragma once

// HTTP/1.1 request framing as plain functions over bytes (RFC 9110/9112): the request head,
// the body's framing, chunked decoding, the path and the query. No sockets here, so a fuzzer or
// a unit test drives each of them directly; gateway/server/listener.cc puts them on a socket.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "conformance/common/result.h"

namespace fhir::gateway::http {

struct RequestHead {
  std::string method;
  std::string target;   // as sent: path and query, still percent-encoded
  int minor_version = 1;  // HTTP/1.<minor_version>
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased, values trimmed

  // The value of the first header named `lower_name`, or nullptr.
  const std::string* header(std::string_view lower_name) const;
};

// Where the head ends in `bytes`: the offset just past the empty line (CRLF CRLF, or LF LF as
// RFC 9112 tolerates), or nullopt when it has not arrived yet.
std::optional<size_t> headEnd(std::string_view bytes);

// Parses a complete head (request line, header fields, the empty line). Errors name what is
// wrong; they are answered 400, except a well-formed version of another major number
// ("HTTP/2.0", "HTTP/9.1"), whose error starts with kUnsupportedVersion: 505.
inline constexpr std::string_view kUnsupportedVersion = "HTTP version not supported";
Result<RequestHead> parseHead(std::string_view head);

// How the body of a request is delimited (RFC 9112 section 6).
struct BodyFraming {
  enum class Kind { kNone, kLength, kChunked };
  Kind kind = Kind::kNone;
  uint64_t length = 0;  // kLength: the declared Content-Length
};
// Errors (answered 400): Content-Length together with Transfer-Encoding, differing or malformed
// Content-Length values, a transfer coding other than chunked.
Result<BodyFraming> bodyFraming(const RequestHead& head);

// Whether the connection stays open after the answer (HTTP/1.1 unless `Connection: close`;
// HTTP/1.0 only with `Connection: keep-alive`).
bool keepsAlive(const RequestHead& head);

// Incremental decoder of a chunked body: feed it what arrived, it writes the data bytes out and
// says when the last chunk and the trailer have been read. Chunk-size lines and trailer lines
// are limited (kMaxLineBytes), sizes must fit 63 bits.
class ChunkedDecoder {
 public:
  static constexpr size_t kMaxLineBytes = 4096;

  struct Step {
    size_t consumed = 0;  // bytes of `in` used
    size_t produced = 0;  // data bytes written to `out`
  };
  // Decodes from `in` into `out` (at most `capacity` bytes). Stops when `out` is full, `in` is
  // used up, the body is complete (done()) or the framing is broken (failed()).
  Step decode(std::string_view in, char* out, size_t capacity);

  bool done() const { return state_ == State::kDone; }
  bool failed() const { return state_ == State::kFailed; }
  const std::string& error() const { return error_; }

 private:
  enum class State { kSize, kData, kDataEnd, kTrailer, kDone, kFailed };
  bool fail(std::string why);
  bool endOfSizeLine();

  State state_ = State::kSize;
  std::string line_;
  uint64_t remaining_ = 0;
  std::string error_;
};

// Percent-decoding of one path segment or query component (`plus_is_space` for the query's
// application/x-www-form-urlencoded form). nullopt for a '%' not followed by two hex digits.
std::optional<std::string> percentDecode(std::string_view text, bool plus_is_space);

// The target split into its decoded path segments and its raw query (without '?').
struct Target {
  std::string path;  // raw path, e.g. "/fhir/Patient/1"
  std::vector<std::string> segments;  // decoded, empty segments dropped
  std::string query;
};
// Errors: a target that is not origin-form (does not start with '/'), a bad percent-escape.
Result<Target> parseTarget(std::string_view target);

// `a=1&b=%20x` as decoded (name, value) pairs in order; a pair without '=' has an empty value.
// Errors name the bad component.
Result<std::vector<std::pair<std::string, std::string>>> parseQuery(std::string_view query);

}  // namespace fhir::gateway::http
