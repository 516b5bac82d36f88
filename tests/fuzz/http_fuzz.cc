// SPDX-License-Identifier: Apache-2.0
// Our own request handling (gateway/server): request framing, routing, percent-decoding, query
// parsing and body framing. The input is the raw bytes of one or more HTTP requests. Each input
// goes through two stages:
//  1. in-process, the framing functions the listener uses (gateway/server/http_framing.h), over
//     the bytes as the listener would cut them: headEnd, parseHead, parseTarget, parseQuery,
//     bodyFraming, keepsAlive, and the chunked decoder fed in small pieces and in one piece. Fast,
//     and with oracles of their own (below);
//  2. over loopback to a real in-process HttpServer (gateway/server/listener.cc and the routes)
//     with the bundled definitions, specs and config/sample.json, a SQLite store in a private
//     temporary folder (under /dev/shm when there is one) and no delivery workers. The write side
//     is shut down after the bytes, so every connection ends; a request the server never answers
//     shows up as a libFuzzer timeout.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "conformance/json/json.h"
#include "gateway/cli/runtime.h"
#include "gateway/config/config.h"
#include "gateway/ingest/pipeline.h"
#include "gateway/server/http_framing.h"
#include "gateway/server/http_server.h"
#include "conformance/common/metrics.h"
#include "tests/fuzz/fuzz_support.h"
#include "gateway_paths.h"

namespace gw = fhir::gateway;

namespace {

struct Server {
  gw::Config config;
  std::unique_ptr<gw::cli::Runtime> runtime;
  fhir::Metrics metrics;
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
    // The sample without its `auth` block (and so without feeds[].client): the harness serves
    // the routes open, as before the sample carried one (its JWK set exists only after
    // `scripts/dev run`).
    std::ifstream sample_file(std::string(GATEWAY_SOURCE_DIR) + "/config/sample.json");
    const std::string sample_text((std::istreambuf_iterator<char>(sample_file)), std::istreambuf_iterator<char>());
    auto sample = fhir::json::parse(sample_text);
    if (!sample.ok() || !sample->IsObject()) fhir::fuzz::fail("cannot read config/sample.json");
    sample->RemoveMember("auth");
    if (fhir::json::Value* feeds = fhir::json::find(*sample, "feeds"); feeds != nullptr && feeds->IsArray()) {
      for (fhir::json::Value& feed : feeds->GetArray()) feed.RemoveMember("client");
    }
    auto config = gw::parseConfig(fhir::json::serialize(*sample));
    if (!config.ok()) fhir::fuzz::fail("cannot read config/sample.json");
    made->config = std::move(*config);
    // The store's writes (fsync) dominate a request; in memory they cost nothing.
    const char* base = std::getenv("TMPDIR");
    std::string folder = base != nullptr && *base != '\0' ? base : "/tmp";
    if (access("/dev/shm", W_OK) == 0) folder = "/dev/shm";
    std::string pattern = folder + "/http-fuzz-XXXXXX";
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

namespace http = gw::http;

// Percent-encodes every byte: decoding that must give the bytes back.
std::string encodeAll(std::string_view bytes) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char c : bytes) {
    out.push_back('%');
    out.push_back(kHex[static_cast<unsigned char>(c) >> 4]);
    out.push_back(kHex[static_cast<unsigned char>(c) & 15]);
  }
  return out;
}

void checkDecoded(const std::string& decoded) {
  auto again = http::percentDecode(encodeAll(decoded), false);
  if (!again || *again != decoded) fhir::fuzz::fail("percentDecode(encode(x)) != x");
}

// Decodes a chunked body in pieces of `piece` bytes into a small buffer; the data and how many
// bytes were used must not depend on the piece sizes.
struct Chunked {
  std::string data;
  size_t used = 0;
  bool done = false, failed = false;
};
Chunked decodeChunked(std::string_view body, size_t piece) {
  http::ChunkedDecoder decoder;
  Chunked out;
  char buffer[61];
  while (!decoder.done() && !decoder.failed() && out.used < body.size()) {
    const std::string_view in = body.substr(out.used, piece);
    auto step = decoder.decode(in, buffer, sizeof buffer);
    if (step.consumed > in.size() || step.produced > sizeof buffer) fhir::fuzz::fail("the chunked decoder overran");
    if (step.consumed == 0 && step.produced == 0) fhir::fuzz::fail("the chunked decoder made no progress");
    out.data.append(buffer, step.produced);
    out.used += step.consumed;
  }
  out.done = decoder.done();
  out.failed = decoder.failed();
  return out;
}

// Stage 1: the bytes cut into requests as Listener::serve does, each piece through the framing
// functions.
void frameInProcess(std::string_view bytes) {
  for (int request = 0; request < 8 && !bytes.empty(); ++request) {
    const std::optional<size_t> end = http::headEnd(bytes);
    if (!end) {
      (void)http::parseHead(bytes);
      return;
    }
    if (*end > bytes.size()) fhir::fuzz::fail("headEnd past the bytes");
    auto head = http::parseHead(bytes.substr(0, *end));
    bytes.remove_prefix(*end);
    if (!head.ok()) return;
    if (head->method.empty() || head->target.empty()) fhir::fuzz::fail("a parsed head without method or target");
    for (const auto& [name, value] : head->headers) {
      for (char c : name) {
        if (c >= 'A' && c <= 'Z') fhir::fuzz::fail("a header name that is not lower-cased");
      }
      if (value.find_first_of("\r\n") != std::string::npos) fhir::fuzz::fail("a header value with a line break");
    }
    (void)http::keepsAlive(*head);
    if (auto target = http::parseTarget(head->target); target.ok()) {
      for (const std::string& segment : target->segments) checkDecoded(segment);
      if (auto query = http::parseQuery(target->query); query.ok()) {
        for (const auto& [name, value] : *query) {
          checkDecoded(name);
          checkDecoded(value);
        }
      }
    }
    auto framing = http::bodyFraming(*head);
    if (!framing.ok()) return;
    if (framing->kind == http::BodyFraming::Kind::kLength) {
      if (framing->length > bytes.size()) return;
      bytes.remove_prefix(static_cast<size_t>(framing->length));
    } else if (framing->kind == http::BodyFraming::Kind::kChunked) {
      const Chunked whole = decodeChunked(bytes, bytes.size());
      const Chunked pieces = decodeChunked(bytes, 3);
      if (whole.data != pieces.data || whole.used != pieces.used || whole.done != pieces.done ||
          whole.failed != pieces.failed) {
        fhir::fuzz::fail("the chunked decoder's result depends on how the bytes arrive");
      }
      if (!whole.done) return;
      bytes.remove_prefix(whole.used);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  (void)server();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  frameInProcess(fhir::fuzz::view(data, size));
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
  // Every answer the listener writes starts with "HTTP/1.1 <3 digits> " (never an echo of the
  // request's version); an empty answer is a connection closed without one (the peer sent
  // nothing, or only blank lines).
  if (!answer.empty()) {
    const bool status = answer.size() > 13 && answer.starts_with("HTTP/1.1 ") && std::isdigit(answer[9]) &&
                        std::isdigit(answer[10]) && std::isdigit(answer[11]) && answer[12] == ' ';
    if (!status) fhir::fuzz::fail("an answer without an HTTP/1.1 status line");
  }
  return 0;
}
