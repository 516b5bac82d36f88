// SPDX-License-Identifier: Apache-2.0
#include "gateway/server/transport.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>

namespace fhir::gateway::http {
namespace {

using Clock = std::chrono::steady_clock;

int64_t msUntil(Clock::time_point deadline) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
}

// Waits until `fd` is readable (POLLIN) or writable (POLLOUT), at most `timeout_ms`: 1 ready
// (or hung up: the next call says how), 0 not in time, -1 an error.
int waitFor(int fd, short events, int64_t timeout_ms) {
  pollfd waiting{fd, events, 0};
  int ready = 0;
  do {
    ready = ::poll(&waiting, 1, static_cast<int>(std::clamp<int64_t>(timeout_ms, 0, INT_MAX)));
  } while (ready < 0 && errno == EINTR);
  return ready < 0 ? -1 : ready;
}

// The most recent OpenSSL error as words, and the queue emptied (it is per thread).
std::string openSslError() {
  unsigned long code = ERR_peek_last_error();
  std::string text = "unknown reason";
  if (code != 0) {
    char buffer[256];
    ERR_error_string_n(code, buffer, sizeof buffer);
    text = buffer;
  }
  ERR_clear_error();
  return text;
}

class PlainTransport final : public Transport {
 public:
  explicit PlainTransport(int fd) : fd_(fd) {}

  // Transport
  int read(char* out, size_t size, int64_t timeout_ms) override {
    const int ready = waitFor(fd_, POLLIN, timeout_ms);
    if (ready == 0) return -1;
    if (ready < 0) return -2;
    ssize_t got = 0;
    do {
      got = ::recv(fd_, out, size, 0);
    } while (got < 0 && errno == EINTR);
    if (got < 0) return -2;
    return static_cast<int>(got);
  }

  bool write(std::string_view bytes, int64_t timeout_ms) override {
    while (!bytes.empty()) {
      ssize_t sent = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      if (sent > 0) {
        bytes.remove_prefix(static_cast<size_t>(sent));
        continue;
      }
      if (sent < 0 && errno == EINTR) continue;
      if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        if (waitFor(fd_, POLLOUT, timeout_ms) <= 0) return false;
        continue;
      }
      return false;
    }
    return true;
  }

 private:
  int fd_;
};

// A BIO on the socket that sends with MSG_NOSIGNAL (a peer that went away must not raise
// SIGPIPE in whatever process embeds the listener) and reports EAGAIN as "retry", so that
// SSL_read/SSL_write/SSL_do_handshake answer WANT_READ/WANT_WRITE and the caller polls.
int bioWrite(BIO* bio, const char* data, int size) {
  BIO_clear_retry_flags(bio);
  const int fd = static_cast<int>(reinterpret_cast<intptr_t>(BIO_get_data(bio)));
  ssize_t sent = 0;
  do {
    sent = ::send(fd, data, static_cast<size_t>(size), MSG_NOSIGNAL | MSG_DONTWAIT);
  } while (sent < 0 && errno == EINTR);
  if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) BIO_set_retry_write(bio);
  return static_cast<int>(sent);
}

int bioRead(BIO* bio, char* data, int size) {
  BIO_clear_retry_flags(bio);
  const int fd = static_cast<int>(reinterpret_cast<intptr_t>(BIO_get_data(bio)));
  ssize_t got = 0;
  do {
    got = ::recv(fd, data, static_cast<size_t>(size), MSG_DONTWAIT);
  } while (got < 0 && errno == EINTR);
  if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) BIO_set_retry_read(bio);
  return static_cast<int>(got);
}

long bioControl(BIO*, int command, long, void*) { return command == BIO_CTRL_FLUSH ? 1 : 0; }

int bioCreate(BIO* bio) {
  BIO_set_init(bio, 1);
  return 1;
}

const BIO_METHOD* socketMethod() {
  static BIO_METHOD* method = [] {
    BIO_METHOD* made = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "fhir-gateway socket");
    BIO_meth_set_write(made, bioWrite);
    BIO_meth_set_read(made, bioRead);
    BIO_meth_set_ctrl(made, bioControl);
    BIO_meth_set_create(made, bioCreate);
    return made;
  }();
  return method;
}

class TlsTransport final : public Transport {
 public:
  TlsTransport(SSL* ssl, int fd) : ssl_(ssl), fd_(fd) {}
  ~TlsTransport() override {
    // close_notify, best effort and without waiting for the peer's.
    if (!failed_ && SSL_is_init_finished(ssl_)) SSL_shutdown(ssl_);
    ERR_clear_error();
    SSL_free(ssl_);
  }

  // Runs (or continues) `step` until it succeeds, polling the socket for what OpenSSL wants,
  // until `deadline`. > 0: done (the step's result); 0: the peer closed; -1: time is up; -2: error.
  template <typename Step>
  int drive(Step step, Clock::time_point deadline) {
    for (;;) {
      ERR_clear_error();  // SSL_get_error reads this thread's queue: it must hold only this call's
      const int result = step();
      if (result > 0) return result;
      const int error = SSL_get_error(ssl_, result);
      if (error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE) {
        const int ready = waitFor(fd_, error == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, msUntil(deadline));
        if (ready == 0) return -1;
        if (ready < 0) break;
        continue;
      }
      // A clean close_notify, or the TCP connection ended without one (no queued error).
      if (error == SSL_ERROR_ZERO_RETURN || (error == SSL_ERROR_SYSCALL && ERR_peek_error() == 0 && result == 0)) {
        ERR_clear_error();
        failed_ = true;
        return 0;
      }
      break;
    }
    error_ = openSslError();
    failed_ = true;
    return -2;
  }

  int handshake(Clock::time_point deadline) {
    return drive([this] { return SSL_do_handshake(ssl_); }, deadline);
  }

  // Transport
  int read(char* out, size_t size, int64_t timeout_ms) override {
    if (failed_) return -2;
    const int capped = static_cast<int>(std::min<size_t>(size, INT_MAX));
    return drive([&] { return SSL_read(ssl_, out, capped); }, Clock::now() + std::chrono::milliseconds(timeout_ms));
  }

  bool write(std::string_view bytes, int64_t timeout_ms) override {
    while (!bytes.empty()) {
      if (failed_) return false;
      const int part = static_cast<int>(std::min<size_t>(bytes.size(), 1 << 20));
      const int written = drive([&] { return SSL_write(ssl_, bytes.data(), part); },
                                Clock::now() + std::chrono::milliseconds(timeout_ms));
      if (written <= 0) return false;
      bytes.remove_prefix(static_cast<size_t>(written));
    }
    return true;
  }

  const std::string& peerSubject() const override { return subject_; }
  void setPeerSubject(std::string subject) { subject_ = std::move(subject); }
  const std::string& error() const { return error_; }

 private:
  SSL* ssl_;
  int fd_;
  bool failed_ = false;
  std::string subject_;
  std::string error_;
};

// RFC 4514 text of a certificate's subject (most specific RDN first, as OpenSSL's RFC2253 form).
std::string subjectText(X509* certificate) {
  BIO* out = BIO_new(BIO_s_mem());
  if (out == nullptr) return {};
  X509_NAME_print_ex(out, X509_get_subject_name(certificate), 0, XN_FLAG_RFC2253);
  char* data = nullptr;
  const long length = BIO_get_mem_data(out, &data);
  std::string text(data != nullptr && length > 0 ? data : "", length > 0 ? static_cast<size_t>(length) : 0);
  BIO_free(out);
  return text;
}

}  // namespace

const std::string& Transport::peerSubject() const {
  static const std::string kNone;
  return kNone;
}

std::unique_ptr<Transport> plainTransport(int fd) { return std::make_unique<PlainTransport>(fd); }

Result<std::shared_ptr<TlsServer>> TlsServer::create(const TlsConfig& config) {
  SSL_CTX* context = SSL_CTX_new(TLS_server_method());
  if (context == nullptr) return Error{"tls: cannot make a TLS context: " + openSslError()};
  auto fail = [&](const std::string& what) -> Error {
    const std::string why = openSslError();
    SSL_CTX_free(context);
    return Error{what + ": " + why};
  };
  SSL_CTX_set_min_proto_version(context, TLS1_2_VERSION);
  SSL_CTX_set_options(context, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  SSL_CTX_set_mode(context, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  if (SSL_CTX_use_certificate_chain_file(context, config.cert_file.c_str()) != 1) {
    return fail("configuration key 'tls.certFile': cannot use '" + config.cert_file + "' (PEM certificate chain)");
  }
  if (SSL_CTX_use_PrivateKey_file(context, config.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    return fail("configuration key 'tls.keyFile': cannot use '" + config.key_file + "' (PEM private key)");
  }
  if (SSL_CTX_check_private_key(context) != 1) {
    return fail("configuration key 'tls.keyFile': '" + config.key_file + "' is not the key of '" + config.cert_file + "'");
  }
  const bool client_certificates = !config.client_ca_file.empty();
  if (client_certificates) {
    if (SSL_CTX_load_verify_locations(context, config.client_ca_file.c_str(), nullptr) != 1) {
      return fail("configuration key 'tls.clientCaFile': cannot use '" + config.client_ca_file + "' (PEM CA certificates)");
    }
    STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(config.client_ca_file.c_str());
    if (names == nullptr) {
      return fail("configuration key 'tls.clientCaFile': no CA certificate in '" + config.client_ca_file + "'");
    }
    SSL_CTX_set_client_CA_list(context, names);
    SSL_CTX_set_verify(context, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
    // Resumed sessions keep the verified certificate; OpenSSL requires a context id for that.
    static constexpr unsigned char kSessionContext[] = "fhir-gateway";
    SSL_CTX_set_session_id_context(context, kSessionContext, sizeof kSessionContext - 1);
  }
  ERR_clear_error();
  return std::shared_ptr<TlsServer>(new TlsServer(context, client_certificates));
}

TlsServer::~TlsServer() { SSL_CTX_free(static_cast<SSL_CTX*>(context_)); }

Result<std::unique_ptr<Transport>> TlsServer::accept(int fd, Clock::time_point deadline) const {
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) return Error{"cannot make the socket non-blocking"};
  SSL* ssl = SSL_new(static_cast<SSL_CTX*>(context_));
  BIO* bio = ssl != nullptr ? BIO_new(socketMethod()) : nullptr;
  if (bio == nullptr) {
    if (ssl != nullptr) SSL_free(ssl);
    return Error{"cannot start TLS: " + openSslError()};
  }
  BIO_set_data(bio, reinterpret_cast<void*>(static_cast<intptr_t>(fd)));
  SSL_set_bio(ssl, bio, bio);
  SSL_set_accept_state(ssl);
  auto transport = std::make_unique<TlsTransport>(ssl, fd);
  const int done = transport->handshake(deadline);
  if (done == -1) return Error{"the TLS handshake was not complete within headerTimeoutMs"};
  if (done == 0) return Error{"the client closed the connection during the TLS handshake"};
  if (done < 0) return Error{"the TLS handshake failed: " + transport->error()};
  if (requires_client_certificate_) {
    X509* certificate = SSL_get1_peer_certificate(ssl);
    const bool verified = certificate != nullptr && SSL_get_verify_result(ssl) == X509_V_OK;
    if (verified) transport->setPeerSubject(subjectText(certificate));
    X509_free(certificate);
    if (!verified) return Error{"the client certificate is missing or not verified"};
  }
  return std::unique_ptr<Transport>(std::move(transport));
}

bool isLoopbackHost(const std::string& host) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* found = nullptr;
  if (::getaddrinfo(host.c_str(), nullptr, &hints, &found) != 0 || found == nullptr) return false;
  bool loopback = true;
  for (addrinfo* at = found; at != nullptr; at = at->ai_next) {
    if (at->ai_family == AF_INET) {
      const uint32_t address = ntohl(reinterpret_cast<const sockaddr_in*>(at->ai_addr)->sin_addr.s_addr);
      loopback = loopback && (address >> 24) == 127;
    } else if (at->ai_family == AF_INET6) {
      const in6_addr& address = reinterpret_cast<const sockaddr_in6*>(at->ai_addr)->sin6_addr;
      const bool mapped_loopback = IN6_IS_ADDR_V4MAPPED(&address) && address.s6_addr[12] == 127;
      loopback = loopback && (IN6_IS_ADDR_LOOPBACK(&address) || mapped_loopback);
    } else {
      loopback = false;
    }
  }
  ::freeaddrinfo(found);
  return loopback;
}

}  // namespace fhir::gateway::http
