// SPDX-License-Identifier: Apache-2.0
// Our own request handling (gateway/server): routing, percent-decoding, query parsing and body
// framing. The input is the raw bytes of one or more HTTP requests, sent over loopback to a real
// in-process HttpServer (Poco) with the bundled definitions, specs and config/sample.json, a
// SQLite store in a private temporary folder and no delivery workers. The write side is shut down
// after the bytes, so every connection ends; a request the server never answers shows up as a
// libFuzzer timeout.
//
// Adapter: routing and parsing are not callable as plain functions (they live inside the Poco
// request handler), hence the socket; see docs/FUZZING.md.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include "gateway/cli/runtime.h"
#include "gateway/config/config.h"
#include "gateway/ingest/pipeline.h"
#include "gateway/server/http_server.h"
#include "gateway/server/metrics.h"
#include "tests/fuzz/fuzz_support.h"

namespace gw = fhir::gateway;

namespace {

struct Server {
  gw::Config config;
  std::unique_ptr<gw::cli::Runtime> runtime;
  gw::Metrics metrics;
  std::unique_ptr<gw::Pipeline> pipeline;
  std::vector<std::string> canonicals;
  std::unique_ptr<gw::ServerContext> context;
  std::unique_ptr<gw::HttpServer> http;
  uint16_t port = 0;
};

std::string g_data_dir;

Server& server() {
  static Server* server = [] {
    signal(SIGPIPE, SIG_IGN);
    auto* made = new Server;
    auto config = gw::loadConfig(std::string(GATEWAY_SOURCE_DIR) + "/config/sample.json");
    if (!config.ok()) fhir::fuzz::fail("cannot read config/sample.json");
    made->config = std::move(*config);
    const char* base = std::getenv("TMPDIR");
    std::string pattern = std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/http-fuzz-XXXXXX";
    if (mkdtemp(pattern.data()) == nullptr) fhir::fuzz::fail("mkdtemp");
    g_data_dir = pattern;
    std::atexit([] {
      std::error_code ignored;
      std::filesystem::remove_all(g_data_dir, ignored);
    });
    made->config.data_dir = pattern;
    auto runtime = gw::cli::loadRuntime(made->config);
    if (!runtime.ok()) fhir::fuzz::fail("cannot load the runtime");
    made->runtime = std::move(*runtime);
    gw::cli::Runtime& r = *made->runtime;
    made->pipeline = std::make_unique<gw::Pipeline>(made->config, r.store, r.validator, made->metrics, [] {});
    made->pipeline->setSubscriptions(r.topics, &r.registry);
    made->pipeline->setSpecs(r.specs);
    for (const gw::Topic& topic : r.topics->topics()) made->canonicals.push_back(topic.canonical);
    made->context = std::make_unique<gw::ServerContext>(gw::ServerContext{
        made->config, r.store, r.validator, *made->pipeline, made->metrics, made->canonicals, r.topics, &r.registry,
        [] {}, ""});
    made->http = std::make_unique<gw::HttpServer>(*made->context);
    if (!made->http->start("127.0.0.1", 0).ok()) fhir::fuzz::fail("cannot start the server");
    made->port = made->http->port();
    const std::string base_url = "http://127.0.0.1:" + std::to_string(made->port) + "/fhir";
    made->pipeline->setBaseUrl(base_url);
    made->context->base_url = base_url;
    return made;
  }();
  return *server;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  (void)server();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const uint16_t port = server().port;
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) fhir::fuzz::fail("socket");
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) fhir::fuzz::fail("connect");
  size_t sent = 0;
  while (sent < size) {
    const ssize_t n = send(fd, data + sent, size - sent, MSG_NOSIGNAL);
    if (n <= 0) break;  // the server closed early (it may refuse before reading everything)
    sent += static_cast<size_t>(n);
  }
  shutdown(fd, SHUT_WR);
  std::string answer;
  char buffer[16384];
  for (;;) {
    const ssize_t n = recv(fd, buffer, sizeof buffer, 0);
    if (n <= 0) break;
    answer.append(buffer, static_cast<size_t>(n));
  }
  close(fd);
  // Every answer the server writes starts with a status line "<version> <3 digits> " (an empty
  // answer is Poco closing a connection whose request it could not parse). The version is not
  // checked: Poco echoes the request's, even a malformed one ("HTTP/11." or "HTTP11/." gets
  // "HTTP11/. 200 OK"; reported in docs/FUZZING.md).
  if (!answer.empty()) {
    const size_t space = answer.find(' ');
    const bool status = space != std::string::npos && space + 4 < answer.size() && std::isdigit(answer[space + 1]) &&
                        std::isdigit(answer[space + 2]) && std::isdigit(answer[space + 3]) && answer[space + 4] == ' ';
    if (!status) fhir::fuzz::fail("an answer without a status line");
  }
  return 0;
}
