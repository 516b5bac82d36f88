// SPDX-License-Identifier: Apache-2.0
#include "tests/e2e/export_fixture.h"

#include <sstream>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "conformance/json/json.h"

namespace fhir::testing {

Status loadPatients(gateway::Store& store, int count) {
  std::vector<gateway::IngestCommit> commits;
  for (int n = 0; n < count; ++n) {
    if (n % 500 == 0) {
      commits.emplace_back();
      commits.back().channel = "test";
      commits.back().idempotency_key = "load-" + std::to_string(n);
      commits.back().payload = "{}";
      commits.back().answer = "ok";
    }
    const std::string id = "p" + std::to_string(n);
    commits.back().resources.push_back(
        {"Patient", id, R"({"resourceType":"Patient","id":")" + id + R"(","gender":"other","birthDate":"1970-01-01"})"});
    if ((n + 1) % 10000 == 0 || n + 1 == count) {
      auto done = store.commitIngestMany(std::move(commits));
      if (!done.ok()) return Error{done.message()};
      commits.clear();
    }
  }
  return Status::Ok();
}

RawResponse exportCall(uint16_t port, const std::string& method, const std::string& target, const std::string& extra) {
  return rawRequest(port, method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" + extra + "\r\n",
                    60000);
}

std::string pathOf(const std::string& url) {
  const size_t scheme = url.find("://");
  const size_t slash = url.find('/', scheme == std::string::npos ? 0 : scheme + 3);
  return slash == std::string::npos ? "/" : url.substr(slash);
}

DownloadedExport downloadExport(uint16_t port, const std::string& manifest_json,
                                const std::function<void(const std::string& url)>& check_file) {
  DownloadedExport out;
  auto manifest = json::parse(manifest_json);
  EXPECT_TRUE(manifest.ok()) << manifest_json;
  if (!manifest.ok()) return out;
  for (const json::Value& output : json::find(*manifest, "output")->GetArray()) {
    const std::string url(json::getString(output, "url").value_or(""));
    if (check_file) check_file(url);
    RawResponse file = exportCall(port, "GET", pathOf(url));
    EXPECT_EQ(file.status, 200) << url;
    if (file.status != 200) continue;
    const int64_t count = json::numberAsInt64(*json::find(output, "count")).value_or(0);
    out.manifest_count += count;
    ++out.files;
    std::istringstream lines(file.body);
    int64_t in_file = 0;
    for (std::string line; std::getline(lines, line);) {
      auto resource = json::parse(line);
      EXPECT_TRUE(resource.ok()) << "a torn line in " << url << ": " << line.substr(0, 80);
      if (!resource.ok()) continue;
      const std::string id(json::getString(*resource, "id").value_or(""));
      EXPECT_TRUE(out.ids.insert(id).second) << id << " is in the files twice";
      ++out.lines;
      ++in_file;
    }
    EXPECT_EQ(in_file, count) << url;
  }
  return out;
}

}  // namespace fhir::testing
