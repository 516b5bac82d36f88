// SPDX-License-Identifier: Apache-2.0
#pragma once

// A raw HTTP/1.1 client socket for the hardening tests: it sends exactly the bytes a test
// writes (a head in pieces, a short body, a chunked body without its last chunk), from a chosen
// loopback address, and reads answers one by one off a kept-alive connection.

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

namespace fhir::testing {

struct RawResponse {
  int status = 0;  // 0: no complete answer arrived
  std::string status_line;  // "HTTP/1.1 400 Bad Request", without CRLF
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
};

class RawClient {
 public:
  // Connects to 127.0.0.1:port from `from` (any 127.0.0.0/8 address).
  RawClient(uint16_t port, const std::string& from = "127.0.0.1");
  ~RawClient();
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  bool connected() const { return fd_ >= 0; }
  bool send(std::string_view bytes);
  void shutdownWrite();
  // Reads one answer (its body by Content-Length) within `timeout_ms`.
  RawResponse read(int timeout_ms);
  // True when the server closed the connection (EOF) within `timeout_ms`, after any answer.
  bool closedByPeer(int timeout_ms);

 private:
  int fd_ = -1;
  std::string buffer_;
};

// One request on a fresh connection, answered within `timeout_ms`.
RawResponse rawRequest(uint16_t port, const std::string& bytes, int timeout_ms = 5000,
                       const std::string& from = "127.0.0.1");

}  // namespace fhir::testing
