// SPDX-License-Identifier: Apache-2.0
// Token endpoint and access token checks (docs/BENCHMARKS.md, section Auth): AuthService's
// token request path with pre-signed ES384 assertions (parse, signature check, jti recorded in
// a real SQLite store, access token signed), and access token verification, cold and cached.
#include <benchmark/benchmark.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <random>

#include "gateway/auth/auth_service.h"

namespace {

using namespace fhir::gateway;
using namespace fhir::gateway::auth;

constexpr const char* kBase = "http://bench.test";
constexpr size_t kAssertions = 4000;  // enough for 2 thread counts x 3 repetitions x 600

int64_t nowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

struct World {
  std::filesystem::path dir;
  std::unique_ptr<AuthService> service;
  std::vector<std::string> forms;  // pre-signed, each with its own jti
  std::atomic<size_t> next{0};

  World() {
    dir = std::filesystem::temp_directory_path() / ("auth-bench-" + std::to_string(std::random_device{}()));
    std::filesystem::create_directories(dir);
    auto store = openSqliteStore(dir.string());
    auto client_key = generateEs384Key();
    const std::string config_text = R"({"createSigningKey":true,"clients":[{"id":"ehr","kind":"ehr","sources":["s"],"jwks":{"keys":[)" +
                                    publicJwkJson(client_key->key, Algorithm::kES384, "k1") + "]}}]}";
    auto doc = fhir::json::parse(config_text);
    auto config = parseAuthConfig(*doc, {});
    auto created = AuthService::create(std::move(*config), *store, dir.string());
    service = std::move(*created);
    service->setBaseUrl(kBase);
    const int64_t exp = nowMs() / 1000 + 290;
    forms.reserve(kAssertions);
    for (size_t index = 0; index < kAssertions; ++index) {
      const std::string claims = R"({"iss":"ehr","sub":"ehr","aud":"http://bench.test/auth/token","exp":)" + std::to_string(exp) +
                                 R"(,"jti":"j)" + std::to_string(index) + R"("})";
      forms.push_back("grant_type=client_credentials&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"
                      "&scope=system%2F*.rs&client_assertion=" + *signJws(*client_key, "k1", claims));
    }
  }
  ~World() {
    service.reset();
    std::error_code error;
    std::filesystem::remove_all(dir, error);
  }
};

World& world() {
  static World* made = new World();
  return *made;
}

void BM_TokenRequest(benchmark::State& state) {
  World& w = world();
  for (auto _ : state) {
    const size_t index = w.next.fetch_add(1) % kAssertions;  // each jti once while kAssertions last
    AuthAnswer answer = w.service->tokenRequest("application/x-www-form-urlencoded", w.forms[index], nowMs());
    if (answer.status != 200) {
      state.SkipWithError(answer.body.c_str());
      break;
    }
    benchmark::DoNotOptimize(answer.body);
  }
  state.SetItemsProcessed(state.iterations());
}
// Iterations are per thread: 600 requests per run either way (group commit shares fsyncs
// among concurrent requests, as the HTTP server's threads do).
BENCHMARK(BM_TokenRequest)->Threads(1)->UseRealTime()->Iterations(600);
BENCHMARK(BM_TokenRequest)->Threads(8)->UseRealTime()->Iterations(75);

void BM_VerifyAccessToken(benchmark::State& state, bool cached) {
  World& w = world();
  const AuthClient& client = *w.service->config().findClient("ehr");
  std::vector<std::string> tokens;
  for (int index = 0; index < 500; ++index) tokens.push_back(*w.service->issueAccessToken(client, ScopeSet::parse("system/*.rs"), nowMs()));
  size_t index = 0;
  if (cached) {
    for (const std::string& token : tokens) benchmark::DoNotOptimize(w.service->verifyAccessToken(token, nowMs()).ok());
  }
  for (auto _ : state) {
    // Uncached: each token is seen for the first time (500 iterations at most).
    auto grant = w.service->verifyAccessToken(tokens[index++ % tokens.size()], nowMs());
    if (!grant.ok()) {
      state.SkipWithError(grant.message().c_str());
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK_CAPTURE(BM_VerifyAccessToken, cold, false)->Iterations(500);
BENCHMARK_CAPTURE(BM_VerifyAccessToken, cached, true)->Iterations(200000);

}  // namespace

BENCHMARK_MAIN();
