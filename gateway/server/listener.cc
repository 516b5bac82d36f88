// SPDX-License-Identifier: Apache-2.0
#include "gateway/server/listener.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "conformance/outcome/outcome.h"

namespace fhir::gateway::http {
namespace {

using Clock = std::chrono::steady_clock;

int64_t msUntil(Clock::time_point deadline) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
}

// Ends our side of a plain connection and reads what the client still sends (at most `limit`
// bytes, until 200 ms of silence or `deadline`) before the socket is closed: unread bytes at
// close() reset the connection, and the reset can take the answer just sent with it (a refused
// body too large to drain, the client still sending).
void lingeringClose(int fd, uint64_t limit, Clock::time_point deadline) {
  ::shutdown(fd, SHUT_WR);
  char scratch[1 << 14];
  for (uint64_t drained = 0; drained < limit;) {
    const int64_t left = msUntil(deadline);
    if (left <= 0) break;
    pollfd readable{fd, POLLIN, 0};
    if (::poll(&readable, 1, static_cast<int>(std::min<int64_t>(left, 200))) <= 0) break;
    const ssize_t got = ::recv(fd, scratch, sizeof scratch, 0);
    if (got <= 0) break;
    drained += static_cast<uint64_t>(got);
  }
}

const char* reasonPhrase(int status) {
  switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Status";
  }
}

// Writes all of `bytes`, waiting at most `timeout_ms` for the peer to take each part.
bool sendAll(int fd, std::string_view bytes, int64_t timeout_ms) {
  while (!bytes.empty()) {
    ssize_t sent = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (sent > 0) {
      bytes.remove_prefix(static_cast<size_t>(sent));
      continue;
    }
    if (sent < 0 && errno == EINTR) continue;
    if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      pollfd waiting{fd, POLLOUT, 0};
      if (::poll(&waiting, 1, static_cast<int>(timeout_ms)) <= 0) return false;
      continue;
    }
    return false;
  }
  return true;
}

std::string peerAddress(const sockaddr_storage& address) {
  char text[INET6_ADDRSTRLEN] = {0};
  if (address.ss_family == AF_INET) {
    ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in&>(address).sin_addr, text, sizeof text);
  } else if (address.ss_family == AF_INET6) {
    ::inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6&>(address).sin6_addr, text, sizeof text);
  }
  return text;
}

}  // namespace

std::string responseBytes(const Response& response, bool close) {
  std::string out = "HTTP/1.1 " + std::to_string(response.status) + " " + reasonPhrase(response.status) + "\r\n";
  // RFC 9110 8.6, 15.3.5, 15.4.5: no Content-Length on a 204, none of the (absent) body on a 304.
  if (response.status != 204 && response.status != 304) {
    out += "Content-Type: " + response.content_type + "\r\n";
    out += "Content-Length: " + std::to_string(response.body.size()) + "\r\n";
  }
  for (const auto& [name, value] : response.headers) out += name + ": " + value + "\r\n";
  if (close) out += "Connection: close\r\n";
  out += "\r\n";
  out += response.body;
  return out;
}

Response refusal(int status, const std::string& code, const std::string& diagnostics, int retry_after_seconds) {
  IssueList issues;
  issues.add(Issue{Severity::kError, code, diagnostics, {}, {}});
  Response response{status, "application/fhir+json", toOperationOutcomeJson(issues), {}};
  if (retry_after_seconds > 0) response.headers.emplace_back("Retry-After", std::to_string(retry_after_seconds));
  return response;
}

std::string refusalBytes(int status, const std::string& code, const std::string& diagnostics, int retry_after_seconds) {
  return responseBytes(refusal(status, code, diagnostics, retry_after_seconds), true);
}

// One accepted socket: the bytes read and not yet used, and reads with a time limit through its
// transport (plain or TLS).
class Connection {
 public:
  explicit Connection(Transport& transport) : transport_(transport) {}

  // Reads what arrives within `timeout_ms` into pending(): > 0 bytes read, 0 the peer closed,
  // -1 nothing arrived in time, -2 an error.
  int fill(int64_t timeout_ms) {
    if (used_ > 0 && used_ == pending_.size()) {
      pending_.clear();
      used_ = 0;
    }
    char chunk[1 << 16];
    const int got = transport_.read(chunk, sizeof chunk, std::max<int64_t>(timeout_ms, 0));
    if (got > 0) pending_.append(chunk, static_cast<size_t>(got));
    return got;
  }

  std::string_view pending() const { return std::string_view(pending_).substr(used_); }
  void consume(size_t count) { used_ += count; }
  bool send(std::string_view bytes, int64_t timeout_ms) { return transport_.write(bytes, timeout_ms); }

 private:
  Transport& transport_;
  std::string pending_;
  size_t used_ = 0;
};

BodyReader::BodyReader(Connection& connection, const BodyFraming& framing, int64_t idle_timeout_ms)
    : connection_(connection), framing_(framing), idle_timeout_ms_(idle_timeout_ms) {
  if (framing_.kind == BodyFraming::Kind::kNone ||
      (framing_.kind == BodyFraming::Kind::kLength && framing_.length == 0)) {
    state_ = State::kComplete;
  }
  setg(buffer_, buffer_, buffer_);
}

BodyReader::int_type BodyReader::underflow() {
  if (gptr() < egptr()) return traits_type::to_int_type(*gptr());
  while (state_ == State::kReading) {
    std::string_view pending = connection_.pending();
    size_t produced = 0;
    if (!pending.empty()) {
      if (framing_.kind == BodyFraming::Kind::kLength) {
        produced = static_cast<size_t>(std::min<uint64_t>({framing_.length - produced_, pending.size(), sizeof buffer_}));
        std::memcpy(buffer_, pending.data(), produced);
        connection_.consume(produced);
        if (produced_ + produced == framing_.length) state_ = State::kComplete;
      } else {
        auto step = chunked_.decode(pending, buffer_, sizeof buffer_);
        connection_.consume(step.consumed);
        produced = step.produced;
        if (chunked_.done()) state_ = State::kComplete;
        if (chunked_.failed()) state_ = State::kMalformed;
      }
    }
    if (produced > 0) {
      produced_ += produced;
      setg(buffer_, buffer_, buffer_ + produced);
      return traits_type::to_int_type(*gptr());
    }
    if (state_ != State::kReading) break;
    const int got = connection_.fill(idle_timeout_ms_);
    if (got == -1) state_ = State::kTimedOut;
    if (got == 0 || got == -2) state_ = State::kShort;
  }
  return traits_type::eof();
}

std::string BodyReader::problem() const {
  switch (state_) {
    case State::kReading:
    case State::kComplete:
      return {};
    case State::kTimedOut:
      return "the body stopped arriving for longer than bodyIdleTimeoutMs (" + std::to_string(idle_timeout_ms_) +
             " ms) after " + std::to_string(produced_) + " bytes";
    case State::kShort:
      if (framing_.kind == BodyFraming::Kind::kLength) {
        return "the body ended after " + std::to_string(produced_) + " of " + std::to_string(framing_.length) +
               " declared bytes (Content-Length)";
      }
      return "the chunked body ended after " + std::to_string(produced_) + " bytes without its last chunk";
    case State::kMalformed:
      return "the chunked body is malformed after " + std::to_string(produced_) + " bytes: " + chunked_.error();
  }
  return {};
}

bool BodyReader::drain(uint64_t limit) {
  const uint64_t stop_at = produced_ + limit;
  while (state_ == State::kReading && produced_ < stop_at) {
    setg(buffer_, buffer_, buffer_);
    if (underflow() == traits_type::eof()) break;
  }
  setg(buffer_, buffer_, buffer_);
  return state_ == State::kComplete;
}

Listener::Listener(const LimitsConfig& limits, Handler handler, std::optional<TlsConfig> tls)
    : limits_(limits), handler_(std::move(handler)), tls_config_(std::move(tls)) {}

Listener::~Listener() { stop(); }

Status Listener::start(const std::string& host, uint16_t port) {
  if (tls_config_ && !tls_) {
    auto tls = TlsServer::create(*tls_config_);
    if (!tls.ok()) return tls.error();
    tls_ = std::move(*tls);
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string where = host + ":" + std::to_string(port);
  if (::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found) != 0 || found == nullptr) {
    return Error{"cannot listen on " + where + ": unknown host"};
  }
  listen_fd_ = ::socket(found->ai_family, found->ai_socktype | SOCK_CLOEXEC, found->ai_protocol);
  int yes = 1;
  ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  const bool bound = listen_fd_ >= 0 && ::bind(listen_fd_, found->ai_addr, found->ai_addrlen) == 0 &&
                     ::listen(listen_fd_, 1024) == 0;
  const int bind_error = errno;
  ::freeaddrinfo(found);
  if (!bound) {
    if (listen_fd_ >= 0) ::close(listen_fd_);
    listen_fd_ = -1;
    return Error{"cannot listen on " + where + ": " + std::strerror(bind_error)};
  }
  sockaddr_storage address{};
  socklen_t length = sizeof address;
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&address), &length);
  port_ = ntohs(address.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6&>(address).sin6_port
                                               : reinterpret_cast<sockaddr_in&>(address).sin_port);
  if (::pipe2(wake_pipe_, O_CLOEXEC) != 0) return Error{"cannot listen on " + where + ": no pipe"};
  acceptor_ = std::thread([this] { acceptLoop(); });
  return Status::Ok();
}

void Listener::acceptLoop() {
  while (!stopping_) {
    pollfd waiting[2] = {{listen_fd_, POLLIN, 0}, {wake_pipe_[0], POLLIN, 0}};
    if (::poll(waiting, 2, -1) < 0) continue;
    if (stopping_ || (waiting[1].revents & POLLIN) != 0) break;
    sockaddr_storage address{};
    socklen_t length = sizeof address;
    const int fd = ::accept4(listen_fd_, reinterpret_cast<sockaddr*>(&address), &length, SOCK_CLOEXEC);
    if (fd < 0) {
      // EMFILE and the like: let the situation ease instead of spinning.
      if (errno != EINTR && errno != ECONNABORTED) ::poll(nullptr, 0, 50);
      continue;
    }
    int yes = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof yes);
    std::string peer = peerAddress(address);
    std::optional<std::string> refused;
    bool health_only = false;
    uint64_t id = 0;
    {
      std::lock_guard lock(mutex_);
      const auto total = static_cast<int64_t>(open_.size()) - lingering_;
      int& from_peer = per_address_[peer];
      if (from_peer >= limits_.max_connections_per_address) {
        refused = refusalBytes(429, "throttled",
                               "too many connections from " + peer + " (maxConnectionsPerAddress " +
                                   std::to_string(limits_.max_connections_per_address) + ")",
                               1);
      } else if (total >= limits_.max_connections + kHealthReserve) {
        // contracts/http-api.md: a client over a connection limit gets 429 with Retry-After.
        refused = refusalBytes(429, "throttled",
                               "the gateway has its maximum of connections open (maxConnections " +
                                   std::to_string(limits_.max_connections) + ")",
                               1);
      } else {
        health_only = total >= limits_.max_connections;
        ++from_peer;
        id = ++next_id_;
        open_[id] = Open{fd, false};
      }
      if (refused && from_peer == 0) per_address_.erase(peer);
    }
    if (refused) {
      // A fresh socket's send buffer is empty: this does not block the acceptor. A TLS client
      // cannot read a plain answer, and a handshake here would stall the acceptor: it is closed.
      if (!tls_) sendAll(fd, *refused, 0);
      ::shutdown(fd, SHUT_WR);
      ::close(fd);
      continue;
    }
    std::thread([this, fd, peer = std::move(peer), health_only, id]() mutable {
      serve(fd, std::move(peer), health_only, id);
    }).detach();
  }
}

bool Listener::setBusy(uint64_t id, bool busy) {
  std::lock_guard lock(mutex_);
  open_[id].busy = busy;
  return !stopping_;
}

void Listener::closeConnection(uint64_t id, const std::string& peer, bool linger) {
  int fd = -1;
  {
    std::lock_guard lock(mutex_);
    Open& open = open_[id];
    fd = open.fd;
    if (--per_address_[peer] <= 0) per_address_.erase(peer);
    // Out of the caps before our FIN: a client that saw the close may connect again at once.
    linger = linger && !stopping_ && lingering_ < kMaxLingering;
    if (linger) {
      open.lingering = true;
      ++lingering_;
    }
  }
  if (linger) lingeringClose(fd, kMaxDrainBytes, Clock::now() + std::chrono::milliseconds(kLingerMs));
  std::lock_guard lock(mutex_);
  ::close(fd);
  if (open_[id].lingering) --lingering_;
  open_.erase(id);
  if (open_.empty()) all_closed_.notify_all();
}

std::unique_ptr<Transport> Listener::openTransport(int fd, int64_t header_timeout,
                                                   std::optional<Clock::time_point>& first_deadline,
                                                   bool& plain_answered) {
  if (!tls_) return plainTransport(fd);
  // The first byte of the handshake within the header timeout; the handshake and the first head
  // within the header timeout of that byte, as for the head of a plain request.
  pollfd waiting{fd, POLLIN, 0};
  int ready = 0;
  do {
    ready = ::poll(&waiting, 1, static_cast<int>(header_timeout));
  } while (ready < 0 && errno == EINTR);
  unsigned char first_byte = 0;
  if (ready <= 0 || ::recv(fd, &first_byte, 1, MSG_PEEK) != 1) return nullptr;
  first_deadline = Clock::now() + std::chrono::milliseconds(header_timeout);
  // A TLS connection starts with a handshake record (22); a request line with a letter.
  if (first_byte != 22) {
    if (first_byte >= 'A' && first_byte <= 'Z') {
      sendAll(fd, refusalBytes(400, "security", "this port serves HTTPS only: send the request over TLS (https://)", 0),
              limits_.body_idle_timeout_ms);
      plain_answered = true;
    }
    return nullptr;
  }
  auto transport = tls_->accept(fd, *first_deadline);
  if (!transport.ok()) return nullptr;
  return std::move(*transport);
}

void Listener::serve(int fd, std::string peer, bool health_only, uint64_t id) {
  const int64_t header_timeout = health_only ? std::min<int64_t>(limits_.header_timeout_ms, 2000) : limits_.header_timeout_ms;
  std::optional<Clock::time_point> first_deadline;
  bool plain_answered = false;
  std::unique_ptr<Transport> transport = openTransport(fd, header_timeout, first_deadline, plain_answered);
  if (!transport) {
    closeConnection(id, peer, plain_answered);
    return;
  }
  Connection connection(*transport);
  bool first = true;
  // A HEAD is answered as its GET without the body (RFC 9110 9.3.2).
  auto answer = [&](const Response& response, bool close, bool head_only = false) {
    std::string bytes = responseBytes(response, close);
    if (head_only || response.status == 204 || response.status == 304) bytes.resize(bytes.size() - response.body.size());
    return connection.send(bytes, limits_.body_idle_timeout_ms) && !close;
  };
  while (!stopping_) {
    // The head: its first byte within the header timeout (keep-alive idle), then all of it
    // within the header timeout of that byte (for the first head over TLS: of the handshake's).
    if (connection.pending().empty()) {
      const int64_t wait = first && first_deadline ? msUntil(*first_deadline) : header_timeout;
      const int got = wait > 0 ? connection.fill(wait) : -1;
      if (got == -1 && first) answer(refusal(408, "timeout", "no request arrived within headerTimeoutMs (" +
                                                                  std::to_string(header_timeout) + " ms)", 0), true);
      if (got <= 0) break;
    }
    const auto deadline =
        first && first_deadline ? *first_deadline : Clock::now() + std::chrono::milliseconds(header_timeout);
    first = false;
    std::optional<size_t> end;
    bool closed = false;
    while (!(end = headEnd(connection.pending()))) {
      if (connection.pending().size() > static_cast<size_t>(limits_.max_header_bytes)) break;
      const int64_t left = msUntil(deadline);
      const int got = left > 0 ? connection.fill(left) : -1;
      if (got == -1) {
        answer(refusal(408, "timeout", "the request head was not complete within headerTimeoutMs (" +
                                           std::to_string(header_timeout) + " ms)", 0), true);
        closed = true;
        break;
      }
      if (got <= 0) {
        closed = true;
        break;
      }
    }
    if (closed) break;
    if (!end || *end > static_cast<size_t>(limits_.max_header_bytes)) {
      answer(refusal(431, "too-long", "the request line and headers are larger than maxHeaderBytes (" +
                                          std::to_string(limits_.max_header_bytes) + " bytes)", 0), true);
      break;
    }
    auto head = parseHead(connection.pending().substr(0, *end));
    connection.consume(*end);
    if (!head.ok()) {
      // RFC 9110 15.6.6: a well-formed request of another major version is 505.
      const bool version = head.message().starts_with(kUnsupportedVersion);
      answer(refusal(version ? 505 : 400, version ? "not-supported" : "structure",
                     version ? head.message() : "the request head is malformed: " + head.message(), 0),
             true);
      break;
    }
    auto framing = bodyFraming(*head);
    if (!framing.ok()) {
      answer(refusal(400, "structure", "the request body's framing is ambiguous: " + framing.message(), 0), true);
      break;
    }
    auto target = parseTarget(head->target);
    BodyReader body_reader(connection, *framing, limits_.body_idle_timeout_ms);
    std::istream body(&body_reader);
    Response response;
    if (!target.ok()) {
      response = refusal(400, "structure", target.message(), 0);
    } else if (health_only && !(head->method == "GET" && (target->path == "/healthz" || target->path == "/readyz"))) {
      response = refusal(429, "throttled",
                         "the gateway has its maximum of connections open (maxConnections " +
                             std::to_string(limits_.max_connections) + "); only /healthz and /readyz are answered",
                         1);
    } else {
      if (!setBusy(id, true)) break;
      // RFC 9110 10.1.1: a client that asked may wait for this before sending the body.
      if (const std::string* expect = head->header("expect");
          expect != nullptr && !body_reader.complete() && (*expect == "100-continue" || *expect == "100-Continue")) {
        connection.send("HTTP/1.1 100 Continue\r\n\r\n", limits_.body_idle_timeout_ms);
      }
      Request request{std::move(*head), std::move(*target), peer, body_reader, body, transport->peerSubject()};
      response = handler_(request);
      setBusy(id, false);
      head = std::move(request.head);
    }
    // What the route did not read is drained, or the connection closes after the answer.
    bool close = health_only || stopping_ || !keepsAlive(*head);
    if (!body_reader.complete()) {
      if (body_reader.state() != BodyReader::State::kReading || !body_reader.drain(kMaxDrainBytes)) close = true;
    }
    if (!answer(response, close, head->method == "HEAD")) break;
  }
  transport.reset();  // TLS: close_notify before the socket closes
  closeConnection(id, peer, !tls_);
}

void Listener::stop() {
  if (listen_fd_ < 0) return;
  stopping_ = true;
  if (wake_pipe_[1] >= 0) {
    const char byte = 1;
    [[maybe_unused]] ssize_t written = ::write(wake_pipe_[1], &byte, 1);
  }
  if (acceptor_.joinable()) acceptor_.join();
  ::close(listen_fd_);
  listen_fd_ = -1;
  std::unique_lock lock(mutex_);
  // Idle connections (waiting for a request, or reading a head) end now; a request in a route
  // is answered first.
  for (auto& [id, open] : open_) {
    if (!open.busy) ::shutdown(open.fd, SHUT_RDWR);
  }
  all_closed_.wait(lock, [&] { return open_.empty(); });
  for (int& end : wake_pipe_) {
    if (end >= 0) ::close(end);
    end = -1;
  }
}

}  // namespace fhir::gateway::http
