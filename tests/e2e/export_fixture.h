// SPDX-License-Identifier: Apache-2.0
#pragma once

// What the Bulk export end-to-end tests share (export_e2e_test, export_scale_e2e_test): a store
// filled with Patients through the store API, requests over a raw socket, and the download of
// every file a manifest lists with the checks each test makes of them.

#include <cstdint>
#include <functional>
#include <set>
#include <string>

#include "conformance/common/result.h"
#include "gateway/store/store.h"
#include "tests/e2e/raw_client.h"

namespace fhir::testing {

// Patients p0 … p<count-1> (gender "other", born 1970-01-01), 500 per commit.
Status loadPatients(gateway::Store& store, int count);

// One request (`extra`: more header lines, each ending in CRLF) on its own connection.
RawResponse exportCall(uint16_t port, const std::string& method, const std::string& target, const std::string& extra = "");

// The path of an absolute URL ("http://host:port/a/b" -> "/a/b").
std::string pathOf(const std::string& url);

struct DownloadedExport {
  std::set<std::string> ids;  // the resources' ids over every file
  int64_t lines = 0;          // lines over every file
  int64_t manifest_count = 0;  // the manifest's `count`s, summed
  int files = 0;
};

// Downloads every `output` file of `manifest_json` from the gateway at `port`. Expects each file
// to answer 200, each line to be a JSON resource, no id twice, and each file to hold as many lines
// as its `count`; `check_file` (optional) sees each file's URL as the manifest gives it.
DownloadedExport downloadExport(uint16_t port, const std::string& manifest_json,
                                const std::function<void(const std::string& url)>& check_file = {});

}  // namespace fhir::testing
