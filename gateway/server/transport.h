// SPDX-License-Identifier: Apache-2.0
#pragma once

// How the listener's bytes travel on one accepted socket: as they are (plainTransport) or inside
// TLS (TlsServer::accept, OpenSSL directly on the non-blocking socket). The listener keeps its
// deadlines because every read and write here takes a time limit and polls the socket itself;
// no call blocks longer than it is told. The socket stays the listener's: it closes it.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "conformance/common/result.h"
#include "gateway/config/config.h"

namespace fhir::gateway::http {

class Transport {
 public:
  virtual ~Transport() = default;
  // Reads what arrives within `timeout_ms` into `out` (at most `size` bytes): > 0 bytes read,
  // 0 the peer closed, -1 nothing arrived in time, -2 an error.
  virtual int read(char* out, size_t size, int64_t timeout_ms) = 0;
  // Writes all of `bytes`, waiting at most `timeout_ms` for the peer to take each part.
  virtual bool write(std::string_view bytes, int64_t timeout_ms) = 0;
  // The subject of the verified client certificate (RFC 4514, "CN=clinic,O=Example"); empty
  // without TLS or without `tls.clientCaFile`.
  virtual const std::string& peerSubject() const;
};

// Bytes as they are on socket `fd`.
std::unique_ptr<Transport> plainTransport(int fd);

// The TLS side of the listener, made once from `tls` (contracts/access.md "Transport"): TLS 1.2
// or later, no compression, no renegotiation; with `clientCaFile`, a client certificate signed by
// one of its CAs is required. Thread-safe: one TlsServer serves every connection thread.
class TlsServer {
 public:
  using Clock = std::chrono::steady_clock;

  // Errors name the file that cannot be used and OpenSSL's reason (start-up errors).
  static Result<std::shared_ptr<TlsServer>> create(const TlsConfig& config);
  ~TlsServer();
  TlsServer(const TlsServer&) = delete;
  TlsServer& operator=(const TlsServer&) = delete;

  // Runs the server side of the handshake on accepted socket `fd` (made non-blocking), which
  // must be complete by `deadline`. Errors say why it failed (timeout, no or unverified client
  // certificate, protocol): the connection is then closed without an answer.
  Result<std::unique_ptr<Transport>> accept(int fd, Clock::time_point deadline) const;

  bool requiresClientCertificate() const { return requires_client_certificate_; }

 private:
  explicit TlsServer(void* context, bool requires_client_certificate)
      : context_(context), requires_client_certificate_(requires_client_certificate) {}
  void* context_;  // SSL_CTX
  bool requires_client_certificate_;
};

// Whether every address `host` resolves to is a loopback address (127.0.0.0/8, ::1, or an
// IPv4-mapped 127.x address). False when it does not resolve.
bool isLoopbackHost(const std::string& host);

}  // namespace fhir::gateway::http
