// SPDX-License-Identifier: Apache-2.0
#include "tests/support/gateway_process.h"

#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/StreamCopier.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "conformance/json/json.h"
#include "tests/support/test_postgres.h"
#include "gateway_test_paths.h"

namespace fhir::testing {

HttpResult httpRequest(uint16_t port, const std::string& method, const std::string& path,
                       const std::string& body, const std::string& content_type) {
  Poco::Net::HTTPClientSession session("127.0.0.1", port);
  session.setTimeout(Poco::Timespan(30, 0));
  Poco::Net::HTTPRequest request(method, path, Poco::Net::HTTPMessage::HTTP_1_1);
  if (method == "POST" || method == "PUT") {
    request.setContentType(content_type);
    request.setContentLength64(static_cast<Poco::Int64>(body.size()));
  }
  std::ostream& out = session.sendRequest(request);
  out.write(body.data(), static_cast<std::streamsize>(body.size()));
  Poco::Net::HTTPResponse response;
  std::istream& in = session.receiveResponse(response);
  HttpResult result;
  result.status = static_cast<int>(response.getStatus());
  result.content_type = response.getContentType();
  result.retry_after = response.get("Retry-After", "");
  Poco::StreamCopier::copyToString(in, result.body);
  return result;
}

bool testStoreIsPostgres() {
  const char* env_file = std::getenv("GATEWAY_TEST_STORE_PG");
  return env_file != nullptr && *env_file != '\0';
}

// The configuration handed to the gateway gets a "store" block for the test cluster, one schema
// per configuration file, so a restarted gateway finds its data and two tests never share any.
std::vector<std::string> withTestStore(std::vector<std::string> args) {
  if (!testStoreIsPostgres()) return args;
  const char* env_file = std::getenv("GATEWAY_TEST_STORE_PG");
  auto cluster = testPostgresFrom(env_file);
  if (!cluster.ok()) {
    ADD_FAILURE() << cluster.message();
    return args;
  }
  for (size_t i = 0; i + 1 < args.size(); ++i) {
    if (args[i] != "--config") continue;
    std::ifstream in(args[i + 1], std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    auto doc = json::parse(text.str());
    if (!in || !doc.ok() || !doc->IsObject()) {
      ADD_FAILURE() << "GATEWAY_TEST_STORE: cannot read the configuration " << args[i + 1];
      return args;
    }
    auto& allocator = doc->GetAllocator();
    doc->RemoveMember("store");
    json::Value block(rapidjson::kObjectType);
    json::addString(block, "kind", "postgresql", allocator);
    json::addString(block, "url", cluster->url, allocator);
    json::addString(block, "passwordFile", cluster->password_file, allocator);
    // One schema per data directory (`--data`, else the configuration's dataDir, else the file):
    // two processes on one data directory share a store, as on SQLite.
    std::string key = args[i + 1];
    if (auto data_dir = json::getString(*doc, "dataDir")) key = std::string(*data_dir);
    for (size_t j = 0; j + 1 < args.size(); ++j) {
      if (args[j] == "--data") key = args[j + 1];
    }
    json::addString(block, "schema", testSchemaFor(key), allocator);
    json::addMember(*doc, "store", std::move(block), allocator);
    const std::string rewritten = args[i + 1] + ".postgresql.json";
    std::ofstream(rewritten, std::ios::binary) << json::serialize(*doc);
    args[i + 1] = rewritten;
    return args;
  }
  return args;
}

GatewayProcess::GatewayProcess(const std::vector<std::string>& given) {
  if (testStoreIsPostgres() && std::find(given.begin(), given.end(), "--config") == given.end()) {
    ADD_FAILURE() << "GATEWAY_TEST_STORE_PG needs the gateway started with --config";
  }
  const std::vector<std::string> args = withTestStore(given);
  int out_pipe[2];
  if (pipe(out_pipe) != 0) {
    ADD_FAILURE() << "pipe failed";
    return;
  }
  pid_ = fork();
  if (pid_ == 0) {
    dup2(out_pipe[1], STDOUT_FILENO);
    close(out_pipe[0]);
    close(out_pipe[1]);
    std::vector<std::string> all = {GATEWAY_BINARY, "serve", "--listen", "127.0.0.1:0"};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (std::string& arg : all) argv.push_back(arg.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(out_pipe[1]);
  std::string output;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd descriptor{out_pipe[0], POLLIN, 0};
    if (poll(&descriptor, 1, 100) <= 0) continue;
    char buffer[256];
    ssize_t got = read(out_pipe[0], buffer, sizeof(buffer));
    if (got <= 0) break;
    output.append(buffer, static_cast<size_t>(got));
    size_t line_end = output.find('\n');
    if (line_end == std::string::npos) continue;
    const std::string line = output.substr(0, line_end);
    for (const std::string prefix : {"listening on http://127.0.0.1:", "listening on https://127.0.0.1:"}) {
      if (line.rfind(prefix, 0) == 0) port_ = static_cast<uint16_t>(std::stoi(line.substr(prefix.size())));
    }
    break;
  }
  close(out_pipe[0]);
  if (port_ == 0) {
    ADD_FAILURE() << "the gateway did not print its 'listening on' line; output: " << output;
    kill();
  }
}

GatewayProcess::~GatewayProcess() {
  if (pid_ > 0) terminate();
}

void GatewayProcess::kill() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
}

int GatewayProcess::terminate() {
  if (pid_ <= 0) return -1;
  ::kill(pid_, SIGTERM);
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

double GatewayProcess::metric(const std::string& name, const std::string& labels) const {
  const std::string text = get("/metrics").body;
  const std::string prefix = name + "{" + labels + "} ";
  const size_t at = text.find(prefix);
  return at == std::string::npos ? -1 : std::stod(text.substr(at + prefix.size()));
}

}  // namespace fhir::testing
