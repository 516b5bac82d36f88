// SPDX-License-Identifier: Apache-2.0
// The listener over real TLS (issue 13, "Transport"): certificates made here by the openssl CLI
// (a CA, a server certificate for 127.0.0.1, client certificates from that CA and from another
// one, one with a subject that is not the client's), a TLS client written with OpenSSL in the
// test. HTTPS ingest and read end to end; plain HTTP to the TLS port refused cleanly; client
// certificates required and bound to `certificateSubject`; the header deadline, a slow handshake,
// the connection caps, the health reserve and the body drain over TLS.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <fstream>
#include <thread>

#include "tests/e2e/e2e_fixture.h"
#include "tests/e2e/raw_client.h"
#include "tests/gateway/auth_test_keys.h"
#include "gateway_test_paths.h"

namespace fhir::testing {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

std::string str(const json::Value& object, const char* key) {
  auto value = json::getString(object, key);
  return value ? std::string(*value) : std::string();
}

int64_t nowSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// Certificates made by the openssl CLI (EC P-256 keys: quick to make): `ca` signs the server's
// (CN and subjectAltName 127.0.0.1), `clinic`'s (O=Example Clinic, CN=clinic.example.org) and
// `impostor`'s (CN=impostor.example.org); `other-ca` signs `stranger`'s, whose subject is
// clinic's.
class Pki {
 public:
  explicit Pki(const std::filesystem::path& dir) : dir_(dir) {
    for (const std::string ca : {"ca", "other-ca"}) {
      run("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj '/CN=" + ca +
          " test root' -keyout " + path(ca + ".key") + " -out " + path(ca + ".pem"));
    }
    leaf("server", "ca", "/CN=127.0.0.1", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n");
    leaf("clinic", "ca", "/O=Example Clinic/CN=clinic.example.org", "extendedKeyUsage=clientAuth\n");
    leaf("impostor", "ca", "/O=Example Clinic/CN=impostor.example.org", "extendedKeyUsage=clientAuth\n");
    leaf("stranger", "other-ca", "/O=Example Clinic/CN=clinic.example.org", "extendedKeyUsage=clientAuth\n");
  }
  std::string path(const std::string& file) const { return (dir_ / file).string(); }

 private:
  void leaf(const std::string& name, const std::string& ca, const std::string& subject, const std::string& extensions) {
    run("openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj '" + subject + "' -keyout " +
        path(name + ".key") + " -out " + path(name + ".csr"));
    std::ofstream(path(name + ".ext")) << extensions;
    run("openssl x509 -req -days 2 -in " + path(name + ".csr") + " -CA " + path(ca + ".pem") + " -CAkey " +
        path(ca + ".key") + " -CAcreateserial -extfile " + path(name + ".ext") + " -out " + path(name + ".pem"));
  }
  static void run(const std::string& command) {
    ASSERT_EQ(std::system((command + " >/dev/null 2>&1").c_str()), 0) << command;
  }
  std::filesystem::path dir_;
};

// A TLS client on 127.0.0.1:port that verifies the server against `ca` (and its name 127.0.0.1),
// optionally presenting a client certificate. Blocking socket; reads with a time limit.
class TlsClient {
 public:
  TlsClient(uint16_t port, const std::string& ca, const std::string& cert = "", const std::string& key = "") {
    context_ = SSL_CTX_new(TLS_client_method());
    SSL_CTX_load_verify_locations(context_, ca.c_str(), nullptr);
    SSL_CTX_set_verify(context_, SSL_VERIFY_PEER, nullptr);
    if (!cert.empty()) {
      SSL_CTX_use_certificate_file(context_, cert.c_str(), SSL_FILETYPE_PEM);
      SSL_CTX_use_PrivateKey_file(context_, key.c_str(), SSL_FILETYPE_PEM);
    }
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in remote{};
    remote.sin_family = AF_INET;
    remote.sin_port = htons(port);
    ::inet_pton(AF_INET, "127.0.0.1", &remote.sin_addr);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&remote), sizeof remote) != 0) return;
    setTimeout(5000);
    ssl_ = SSL_new(context_);
    SSL_set_fd(ssl_, fd_);
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_), "127.0.0.1");
    handshaken_ = SSL_connect(ssl_) == 1;
    if (!handshaken_) error_ = lastError();
  }
  ~TlsClient() {
    if (ssl_ != nullptr) SSL_free(ssl_);
    if (fd_ >= 0) ::close(fd_);
    SSL_CTX_free(context_);
  }
  TlsClient(const TlsClient&) = delete;
  TlsClient& operator=(const TlsClient&) = delete;

  bool handshaken() const { return handshaken_; }
  const std::string& error() const { return error_; }

  bool send(std::string_view bytes) {
    if (!handshaken_) return false;
    while (!bytes.empty()) {
      const int written = SSL_write(ssl_, bytes.data(), static_cast<int>(bytes.size()));
      if (written <= 0) {
        error_ = lastError();
        return false;
      }
      bytes.remove_prefix(static_cast<size_t>(written));
    }
    return true;
  }

  // One answer: its status and its body by Content-Length; status 0 when none arrived whole
  // within `timeout_ms` (error() then says what OpenSSL saw, e.g. an alert).
  RawResponse read(int timeout_ms) {
    RawResponse response;
    const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
    while (handshaken_ && Clock::now() < deadline) {
      const size_t head_end = buffer_.find("\r\n\r\n");
      if (head_end != std::string::npos) {
        size_t length = 0;
        const size_t at = lower(buffer_.substr(0, head_end)).find("\r\ncontent-length:");
        if (at != std::string::npos) length = std::stoul(buffer_.substr(at + 17));
        if (buffer_.size() >= head_end + 4 + length) {
          response.status = std::atoi(buffer_.c_str() + 9);
          // Header lines after the status line, names lower-cased.
          for (size_t line = buffer_.find("\r\n") + 2; line < head_end;) {
            const size_t end = std::min(buffer_.find("\r\n", line), head_end);
            const size_t colon = buffer_.find(':', line);
            if (colon < end) {
              const size_t value = buffer_.find_first_not_of(' ', colon + 1);
              response.headers[lower(buffer_.substr(line, colon - line))] = buffer_.substr(value, end - value);
            }
            line = end + 2;
          }
          response.body = buffer_.substr(head_end + 4, length);
          buffer_.erase(0, head_end + 4 + length);
          return response;
        }
      }
      setTimeout(std::max<int64_t>(1, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count()));
      char chunk[16384];
      const int got = SSL_read(ssl_, chunk, sizeof chunk);
      if (got <= 0) {
        error_ = lastError();
        break;
      }
      buffer_.append(chunk, static_cast<size_t>(got));
    }
    return response;
  }

 private:
  void setTimeout(int64_t ms) {
    timeval limit{static_cast<time_t>(ms / 1000), static_cast<suseconds_t>((ms % 1000) * 1000)};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
  }
  static std::string lower(std::string text) {
    for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return text;
  }
  static std::string lastError() {
    const unsigned long code = ERR_get_error();
    ERR_clear_error();
    if (code == 0) return "no TLS error (connection closed)";
    char text[256];
    ERR_error_string_n(code, text, sizeof text);
    return text;
  }

  SSL_CTX* context_ = nullptr;
  SSL* ssl_ = nullptr;
  int fd_ = -1;
  bool handshaken_ = false;
  std::string error_;
  std::string buffer_;
};

std::string requestBytes(const std::string& method, const std::string& path, const std::string& body = "",
                         const std::string& content_type = "application/json") {
  std::string bytes = method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
  if (!body.empty()) bytes += "Content-Type: " + content_type + "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  return bytes + "\r\n" + body;
}

// The first bytes a real TLS client sends: its ClientHello, made by OpenSSL into memory.
std::string clientHello() {
  SSL_CTX* context = SSL_CTX_new(TLS_client_method());
  SSL* ssl = SSL_new(context);
  BIO* in = BIO_new(BIO_s_mem());
  BIO* out = BIO_new(BIO_s_mem());
  SSL_set_bio(ssl, in, out);
  SSL_connect(ssl);  // wants to read the ServerHello: the ClientHello is in `out`
  char* data = nullptr;
  const long length = BIO_get_mem_data(out, &data);
  std::string hello(data, static_cast<size_t>(length));
  SSL_free(ssl);
  SSL_CTX_free(context);
  return hello;
}

class TlsEndToEnd : public GatewayFixture {
 protected:
  void SetUp() override {
    // The test's TLS client writes with write(2): a refused session must not kill the test.
    std::signal(SIGPIPE, SIG_IGN);
    GatewayFixture::SetUp();
    pki_ = std::make_unique<Pki>(keys_.path());
  }

  // The fixture's configuration with `extra` members added at its top level, then started.
  void startWith(const std::string& extra) {
    std::string config = readFile(config_path_);
    config = replaceOnce(config, "\"maxBodyBytes\": 65536,", "\"maxBodyBytes\": 65536, " + extra + ",");
    std::ofstream(config_path_, std::ios::trunc) << config;
    startGateway();
  }

  std::string tlsBlock(bool client_ca) const {
    return R"("tls": {"certFile": ")" + pki_->path("server.pem") + R"(", "keyFile": ")" + pki_->path("server.key") +
           (client_ca ? R"(", "clientCaFile": ")" + pki_->path("ca.pem") : std::string()) + R"("})";
  }

  // One request over a fresh TLS connection, presenting client certificate `client` (a Pki
  // name) when given; status 0 when the connection or the TLS session was refused.
  RawResponse https(const std::string& bytes, const std::string& client = "", std::string* error = nullptr) const {
    TlsClient tls(gateway_->port(), pki_->path("ca.pem"), client.empty() ? "" : pki_->path(client + ".pem"),
                  client.empty() ? "" : pki_->path(client + ".key"));
    RawResponse response;
    if (tls.send(bytes)) response = tls.read(10000);
    if (error != nullptr) *error = tls.error();
    return response;
  }

  std::string base() const { return "https://127.0.0.1:" + std::to_string(gateway_->port()); }

  TempDir keys_;
  std::unique_ptr<Pki> pki_;
};

TEST_F(TlsEndToEnd, AnEventIsIngestedAndReadOverHttpsAndPlainHttpIsRefusedCleanly) {
  startWith(tlsBlock(false));
  ASSERT_TRUE(gateway_->running());

  RawResponse accepted = https(requestBytes("POST", "/ingest/econsult", event("request")));
  ASSERT_EQ(accepted.status, 202) << accepted.body;
  json::Document bundle = parse(accepted.body);
  size_t read_back = 0;
  for (const json::Value& entry : bundle["entry"].GetArray()) {
    const json::Value& resource = entry["resource"];
    if (str(resource, "resourceType") == "OperationOutcome") continue;
    const std::string path = "/fhir/" + str(resource, "resourceType") + "/" + str(resource, "id");
    // publicBaseUrl defaults to the listen address, with https:// under TLS.
    EXPECT_EQ(str(entry, "fullUrl"), base() + path);
    RawResponse read = https(requestBytes("GET", path));
    ASSERT_EQ(read.status, 200) << path << ": " << read.body;
    EXPECT_EQ(str(parse(read.body), "id"), str(resource, "id"));
    ++read_back;
  }
  EXPECT_GE(read_back, 5u);

  // Plain HTTP to the TLS port: a plain 400 naming the reason, then the connection closes.
  RawClient plain(gateway_->port());
  ASSERT_TRUE(plain.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
  RawResponse refused = plain.read(5000);
  EXPECT_EQ(refused.status, 400);
  EXPECT_NE(refused.body.find("HTTPS only"), std::string::npos) << refused.body;
  EXPECT_TRUE(plain.closedByPeer(2000));
  // Bytes that are neither TLS nor HTTP: closed without an answer.
  RawClient garbage(gateway_->port());
  ASSERT_TRUE(garbage.send(std::string("\x01\x02\x03\x04", 4)));
  EXPECT_TRUE(garbage.closedByPeer(2000));

  // A body the route does not read is drained: the next request on the connection is answered.
  TlsClient kept(gateway_->port(), pki_->path("ca.pem"));
  ASSERT_TRUE(kept.handshaken()) << kept.error();
  ASSERT_TRUE(kept.send(requestBytes("GET", "/healthz", std::string(100, 'x'))));
  EXPECT_EQ(kept.read(5000).status, 200);
  ASSERT_TRUE(kept.send(requestBytes("GET", "/readyz")));
  EXPECT_EQ(kept.read(5000).status, 200);
}

TEST_F(TlsEndToEnd, ClientCertificatesAreRequiredVerifiedAndBoundToTheClient) {
  auto key = makeEcKey();
  // certificateSubject as `openssl x509 -subject` prints it; the listener gives RFC 4514 order.
  // With auth a static feed is bound to an hie client (access.md).
  std::string config = readFile(config_path_);
  config = replaceOnce(config, R"("id": "regional-hie", )", R"("id": "regional-hie", "client": "hie", )");
  std::ofstream(config_path_, std::ios::trunc) << config;
  const std::string jwks = R"({"keys": [)" + gateway::auth::publicJwkJson(key, gateway::auth::Algorithm::kES384, "k1") + "]}";
  startWith(tlsBlock(true) + R"(, "auth": {"createSigningKey": true, "clients": [
      {"id": "riverview-ehr", "kind": "ehr", "sources": ["riverview-ehr"],
       "certificateSubject": "O = Example Clinic, CN = clinic.example.org", "jwks": )" + jwks + R"(},
      {"id": "hie", "kind": "hie", "practices": "all", "jwks": )" + jwks + "}]}");
  ASSERT_TRUE(gateway_->running());
  const std::string token_url = base() + "/auth/token";
  int jti = 0;
  auto tokenRequest = [&] {
    const std::string assertion =
        signAssertion(key.get(), "k1", assertionClaims("riverview-ehr", token_url, nowSeconds() + 60, "j" + std::to_string(++jti)));
    return requestBytes("POST", "/auth/token",
                        "grant_type=client_credentials&client_assertion_type="
                        "urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion=" +
                            assertion + "&scope=system%2F*.rs",
                        "application/x-www-form-urlencoded");
  };

  // No certificate, and one from another CA (with the right subject): no TLS session, no answer.
  std::string why;
  EXPECT_EQ(https(requestBytes("GET", "/healthz"), "", &why).status, 0);
  EXPECT_FALSE(why.empty());
  EXPECT_EQ(https(requestBytes("GET", "/healthz"), "stranger", &why).status, 0);
  EXPECT_EQ(https(tokenRequest(), "stranger").status, 0);

  // A certificate of the CA whose subject is not the client's: TLS works, the token is refused.
  EXPECT_EQ(https(requestBytes("GET", "/healthz"), "impostor").status, 200);
  RawResponse impostor = https(tokenRequest(), "impostor");
  EXPECT_EQ(impostor.status, 401) << impostor.body;
  EXPECT_EQ(str(parse(impostor.body), "error"), "invalid_client");
  EXPECT_NE(impostor.body.find("certificateSubject"), std::string::npos) << impostor.body;

  // The client's own certificate: a token, for the https:// token endpoint.
  RawResponse smart = https(requestBytes("GET", "/.well-known/smart-configuration"), "clinic");
  ASSERT_EQ(smart.status, 200);
  EXPECT_EQ(str(parse(smart.body), "token_endpoint"), token_url);
  RawResponse issued = https(tokenRequest(), "clinic");
  ASSERT_EQ(issued.status, 200) << issued.body;
  const std::string token = str(parse(issued.body), "access_token");
  ASSERT_FALSE(token.empty());

  // Each use of the token is bound too: over the client's own certificate it is accepted (the
  // read answers 404, not 401), over another certificate of the same CA it is 401 invalid_token.
  const std::string read = "GET /fhir/Patient/nobody HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + token + "\r\n\r\n";
  RawResponse own = https(read, "clinic");
  EXPECT_EQ(own.status, 404) << own.body;
  RawResponse other = https(read, "impostor");
  EXPECT_EQ(other.status, 401) << other.body;
  EXPECT_NE(other.headers["www-authenticate"].find("error=\"invalid_token\""), std::string::npos);
  EXPECT_NE(other.body.find("bound to another TLS client certificate"), std::string::npos) << other.body;
  // A token of a client without certificateSubject is not bound: any verified certificate will do.
  const std::string hie_assertion =
      signAssertion(key.get(), "k1", assertionClaims("hie", token_url, nowSeconds() + 60, "j" + std::to_string(++jti)));
  RawResponse hie = https(requestBytes("POST", "/auth/token",
                                       "grant_type=client_credentials&client_assertion_type="
                                       "urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion=" +
                                           hie_assertion + "&scope=system%2F*.rs",
                                       "application/x-www-form-urlencoded"),
                          "impostor");
  ASSERT_EQ(hie.status, 200) << hie.body;
  const std::string hie_read = "GET /fhir/Patient/nobody HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " +
                               str(parse(hie.body), "access_token") + "\r\n\r\n";
  EXPECT_EQ(https(hie_read, "clinic").status, 404);
}

TEST_F(TlsEndToEnd, DeadlinesCapsAndTheHealthReserveHoldOverTls) {
  startWith(tlsBlock(false) + R"(, "limits": {"headerTimeoutMs": 1000, "maxConnections": 4, "maxConnectionsPerAddress": 4})");
  ASSERT_TRUE(gateway_->running());
  const uint16_t port = gateway_->port();

  // A handshake trickled one byte every 100 ms is cut headerTimeoutMs after its first byte:
  // trickling does not extend it.
  {
    const std::string hello = clientHello();
    ASSERT_GT(hello.size(), 40u);
    RawClient slow(port);
    const auto start = Clock::now();
    bool closed = false;
    for (size_t at = 0; at < hello.size() - 1 && Clock::now() - start < 4s && !closed; ++at) {
      slow.send(hello.substr(at, 1));
      closed = slow.closedByPeer(100);
    }
    EXPECT_TRUE(closed || slow.closedByPeer(2000));
    const auto took = Clock::now() - start;
    EXPECT_GE(took, 900ms);
    EXPECT_LT(took, 2500ms);
  }
  // A connection that never says anything is closed after headerTimeoutMs, without an answer.
  {
    RawClient silent(port);
    const auto start = Clock::now();
    EXPECT_TRUE(silent.closedByPeer(4000));
    EXPECT_GE(Clock::now() - start, 900ms);
  }
  // After the handshake, a head that does not complete in time is answered 408 over TLS.
  {
    TlsClient tls(port, pki_->path("ca.pem"));
    ASSERT_TRUE(tls.handshaken()) << tls.error();
    ASSERT_TRUE(tls.send("GET /healthz HTTP/1.1\r\nHost: x\r\n"));
    RawResponse timed_out = tls.read(4000);
    EXPECT_EQ(timed_out.status, 408) << timed_out.body;
    EXPECT_NE(timed_out.body.find("headerTimeoutMs"), std::string::npos);
  }
  // Four silent connections from 127.0.0.2 fill maxConnections and its per-address cap: a fifth
  // from there is closed at once (a TLS client could not read a plain 429), and /healthz still
  // answers over TLS on the health reserve while other routes are 503.
  {
    std::vector<std::unique_ptr<RawClient>> holders;
    for (int index = 0; index < 4; ++index) holders.push_back(std::make_unique<RawClient>(port, "127.0.0.2"));
    std::this_thread::sleep_for(50ms);  // let the acceptor count them
    RawClient fifth(port, "127.0.0.2");
    const auto start = Clock::now();
    EXPECT_TRUE(fifth.closedByPeer(900));
    EXPECT_LT(Clock::now() - start, 500ms);
    EXPECT_EQ(https(requestBytes("GET", "/healthz")).status, 200);
    // Over maxConnections, on the health reserve: 429 (http-api.md: a client over its connection limit).
    EXPECT_EQ(https(requestBytes("GET", "/fhir/metadata")).status, 429);
  }
  // Once the holders' connections are released, a normal request is served again.
  int status = 0;
  for (const auto start = Clock::now(); status != 200 && Clock::now() - start < 5s;) {
    status = https(requestBytes("GET", "/fhir/metadata")).status;
  }
  EXPECT_EQ(status, 200);
}

// The start-up rules, on the real binary: each refusal is exit 2 with one line naming the reason.
TEST_F(TlsEndToEnd, StartUpRefusesPlainHttpOffLoopbackAndAWildcardBaseUrl) {
  TempDir scratch;
  const std::string serve = std::string(GATEWAY_BINARY) + " serve --data " + (data_.path() / "var").string();
  auto joined = [](const std::vector<std::string>& lines) {
    std::string text;
    for (const std::string& line : lines) text += line + "\n";
    return text;
  };
  auto config = [&](const std::string& name, const std::string& members) {
    const std::string path = (keys_.path() / name).string();
    std::ofstream(path) << "{" << members << "}";
    return path;
  };

  CommandRun plain = runCommand(serve + " --listen 0.0.0.0:0", scratch);
  EXPECT_EQ(plain.exit_code, 2);
  EXPECT_NE(joined(plain.err).find("'0.0.0.0', which is not a loopback address, needs \"tls\""), std::string::npos)
      << joined(plain.err);

  // allowPlainHttp lifts that (with a warning), but 0.0.0.0 is still no base URL to publish.
  CommandRun wildcard = runCommand(serve + " --listen 0.0.0.0:0 --config " + config("allow.json", R"("allowPlainHttp": true)"), scratch);
  EXPECT_EQ(wildcard.exit_code, 2);
  EXPECT_NE(joined(wildcard.err).find("warning: allowPlainHttp"), std::string::npos) << joined(wildcard.err);
  EXPECT_NE(joined(wildcard.err).find("needs 'publicBaseUrl'"), std::string::npos) << joined(wildcard.err);

  CommandRun bad_url = runCommand(serve + " --listen 127.0.0.1:0 --public-base-url https://0.0.0.0:8443", scratch);
  EXPECT_EQ(bad_url.exit_code, 2);
  EXPECT_NE(joined(bad_url.err).find("not a wildcard"), std::string::npos) << joined(bad_url.err);

  CommandRun half_tls = runCommand(serve + " --listen 127.0.0.1:0 --tls-cert " + pki_->path("server.pem"), scratch);
  EXPECT_EQ(half_tls.exit_code, 2);
  EXPECT_NE(joined(half_tls.err).find("--tls-cert and --tls-key go together"), std::string::npos) << joined(half_tls.err);

  // A key that is not the certificate's: refused before listening, naming the key.
  CommandRun mismatched = runCommand(serve + " --listen 127.0.0.1:0 --tls-cert " + pki_->path("server.pem") +
                                         " --tls-key " + pki_->path("clinic.key"),
                                     scratch);
  EXPECT_EQ(mismatched.exit_code, 2);
  EXPECT_NE(joined(mismatched.err).find("tls.keyFile"), std::string::npos) << joined(mismatched.err);
}

}  // namespace
}  // namespace fhir::testing
