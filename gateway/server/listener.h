// SPDX-License-Identifier: Apache-2.0
#pragma once

// The gateway's HTTP/1.1 connection handling on plain sockets: one thread per connection,
// with the limits of `limits` (contracts/cli.md) enforced before a request reaches a route.
//
// Why not POCO's HTTPServer: its workers are a fixed pool fed by a queue, and a worker reading a
// request head only has a per-recv timeout. 64 clients trickling one header line every 10 s,
// or 200 that connect and say nothing, took every worker and left /healthz queued for a minute.
// Here:
//  * a connection is served by its own thread, so a slow client holds only its own thread,
//    never a request of someone else;
//  * the request head must be complete within headerTimeoutMs of its first byte (408) and be at
//    most maxHeaderBytes (431); a body may not be silent longer than bodyIdleTimeoutMs (408);
//  * at most maxConnections connections are open, and at most maxConnectionsPerAddress from one
//    peer address: above that the acceptor answers 429 with Retry-After (contracts/http-api.md)
//    and closes, without starting a thread;
//  * kHealthReserve connections above maxConnections are accepted for the health endpoints
//    only (GET /healthz, /readyz; anything else is 429 with Retry-After), so liveness answers
//    while every connection slot is taken;
//  * the body of an answered request that the route did not read is drained (up to
//    kMaxDrainBytes) or the connection is closed, so the next request on a kept-alive connection
//    starts at a request line, never in a body;
//  * a plain connection ends with a lingering close (our side shut, what the client still sends
//    read for a moment, then closed: closing on unread bytes resets the connection and can take
//    the answer with it). The connection leaves the caps before our side is shut, so a client
//    that saw the close may connect again at once; at most kMaxLingering connections linger,
//    each for at most kLingerMs.
// With `tls` the bytes travel through a TlsServer (gateway/server/transport.h), in the
// connection's thread: the handshake's first byte must arrive within headerTimeoutMs, and the
// handshake and the first request head must be complete within headerTimeoutMs of it (a slow
// handshake is a slow head). A connection refused by the caps is closed without an answer (a TLS
// client cannot read a plain one); plain HTTP sent to the TLS port is answered 400 in plain text.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <istream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <streambuf>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "conformance/common/result.h"
#include "gateway/config/config.h"
#include "gateway/server/http_framing.h"
#include "gateway/server/transport.h"

namespace fhir::gateway::http {

struct Response {
  int status = 200;
  std::string content_type = "application/fhir+json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // beside Content-Type/-Length
};

class Connection;

// The body of one request as a stream. It ends (EOF) when the body ended as framed, or earlier:
// then state() says why.
class BodyReader final : public std::streambuf {
 public:
  enum class State { kReading, kComplete, kShort, kTimedOut, kMalformed };

  BodyReader(Connection& connection, const BodyFraming& framing, int64_t idle_timeout_ms);

  State state() const { return state_; }
  bool complete() const { return state_ == State::kComplete; }
  uint64_t bytesRead() const { return produced_; }
  const BodyFraming& framing() const { return framing_; }
  // Why the body is not complete, in words ("the body ended after 10 of 100 declared bytes").
  std::string problem() const;
  // Reads and drops the rest, at most `limit` more bytes; true when the body is then complete.
  bool drain(uint64_t limit);

 protected:
  int_type underflow() override;

 private:
  Connection& connection_;
  BodyFraming framing_;
  int64_t idle_timeout_ms_;
  State state_ = State::kReading;
  uint64_t produced_ = 0;
  ChunkedDecoder chunked_;
  char buffer_[1 << 16];
};

struct Request {
  RequestHead head;
  Target target;
  std::string peer;  // the client's address
  BodyReader& body_reader;
  std::istream& body;
  // The verified TLS client certificate's subject (RFC 4514); empty without `tls.clientCaFile`.
  // The auth code matches it against the client's `certificateSubject` (auth::certificateMatches).
  std::string peer_subject = {};
};

using Handler = std::function<Response(Request&)>;

class Listener {
 public:
  static constexpr int kHealthReserve = 8;
  static constexpr uint64_t kMaxDrainBytes = 1 << 20;
  static constexpr int kMaxLingering = 64;
  static constexpr int64_t kLingerMs = 2000;

  // `tls`: serve HTTPS (its files are loaded by start()); none: plain HTTP.
  Listener(const LimitsConfig& limits, Handler handler, std::optional<TlsConfig> tls = std::nullopt);
  ~Listener();
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  // Binds host:port (0: a free port), listens and starts accepting. Errors: the address, and
  // with `tls` a certificate, key or CA file OpenSSL cannot use.
  Status start(const std::string& host, uint16_t port);
  uint16_t port() const { return port_; }
  // Stops accepting, closes idle connections, waits for requests in flight to be answered.
  void stop();

 private:
  friend class Connection;
  void acceptLoop();
  void serve(int fd, std::string peer, bool health_only, uint64_t id);
  // The connection's transport: plain, or TLS after the handshake (nullptr: closed, answered
  // when it could be; `plain_answered`: a plain request answered 400, to close lingering).
  // `first_deadline` is set to when the first request head must be complete.
  std::unique_ptr<Transport> openTransport(int fd, int64_t header_timeout,
                                           std::optional<std::chrono::steady_clock::time_point>& first_deadline,
                                           bool& plain_answered);
  // Ends connection `id`: out of the caps first, then (plain) a lingering close, then closed.
  void closeConnection(uint64_t id, const std::string& peer, bool linger);
  // Marks connection `id` busy (inside a request) or idle; false when the listener is stopping.
  bool setBusy(uint64_t id, bool busy);

  LimitsConfig limits_;
  Handler handler_;
  std::optional<TlsConfig> tls_config_;
  std::shared_ptr<const TlsServer> tls_;
  int listen_fd_ = -1;
  int wake_pipe_[2] = {-1, -1};
  uint16_t port_ = 0;
  std::thread acceptor_;
  std::atomic<bool> stopping_{false};

  std::mutex mutex_;
  std::condition_variable all_closed_;
  struct Open {
    int fd;
    bool busy;
    bool lingering = false;
  };
  std::map<uint64_t, Open> open_;  // the lingering too: stop() waits for them
  int lingering_ = 0;
  std::map<std::string, int> per_address_;
  uint64_t next_id_ = 0;
};

// The raw answer a refusal writes on a socket ("HTTP/1.1 429 Too Many Requests" ... with an
// OperationOutcome), for the listener and its tests.
std::string refusalBytes(int status, const std::string& code, const std::string& diagnostics, int retry_after_seconds);
// Serializes `response` ("Connection: close" when `close`).
std::string responseBytes(const Response& response, bool close);

}  // namespace fhir::gateway::http
