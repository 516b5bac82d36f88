// SPDX-License-Identifier: Apache-2.0
// docs/alignment-ig.md against the alignment package: the table's generated columns (profiles and
// extensions, topics, terminology per design element) are rebuilt from
// ImplementationGuide-alignment.json (definition.grouping, resource.groupingId and the
// design-element extension) and must equal the table's cells; every grouping has a row; every
// resource file of the package is listed in the ImplementationGuide with a grouping.

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "conformance/json/json.h"
#include "tests/support/test_support.h"
#include "gateway_paths.h"

namespace fhir {
namespace {

namespace fs = std::filesystem;

constexpr const char* kDesignElement = "https://fhir.alignment-gateway.org/StructureDefinition/design-element";

fs::path packageDir() { return fs::path(GATEWAY_SOURCE_DIR) / "fhir_profiles" / "alignment" / "package"; }

json::Document load(const fs::path& path) {
  auto doc = json::parse(testing::readFile(path));
  EXPECT_TRUE(doc.ok()) << path << ": " << (doc.ok() ? "" : doc.message());
  return doc.ok() ? std::move(*doc) : json::Document();
}

std::string str(const json::Value& object, const char* key) { return std::string(json::getString(object, key).value_or("")); }

// The three generated cells of a design element.
struct Columns {
  std::set<std::string> profiles;     // StructureDefinition ids
  std::set<std::string> topics;       // Basic (SubscriptionTopic) ids
  std::set<std::string> terminology;  // "CodeSystem/id", "ValueSet/id", "ConceptMap/id"
};

std::string cell(const std::set<std::string>& items) {
  if (items.empty()) return "none";
  std::string out;
  for (const std::string& item : items) out += (out.empty() ? "`" : ", `") + item + "`";
  return out;
}

struct Package {
  std::vector<std::string> grouping_ids;
  std::map<std::string, Columns> columns;  // by grouping id
  std::set<std::string> listed;            // "Type/id" of every ImplementationGuide resource
  std::vector<std::string> ungrouped;      // non-example resources without a groupingId
};

Package readPackage() {
  Package out;
  json::Document ig = load(packageDir() / "ImplementationGuide-alignment.json");
  if (!ig.IsObject()) return out;
  const json::Value& definition = ig["definition"];
  const json::Value* groupings = json::find(definition, "grouping");
  EXPECT_TRUE(groupings && groupings->IsArray()) << "ImplementationGuide.definition.grouping is missing";
  if (groupings && groupings->IsArray()) {
    for (const json::Value& grouping : groupings->GetArray()) {
      out.grouping_ids.push_back(str(grouping, "id"));
      out.columns[str(grouping, "id")];
    }
  }
  for (const json::Value& resource : definition["resource"].GetArray()) {
    const std::string reference = str(resource["reference"], "reference");
    out.listed.insert(reference);
    if (json::find(resource, "exampleCanonical") || json::find(resource, "exampleBoolean") == nullptr) continue;
    std::vector<std::string> elements;
    if (auto grouping = json::getString(resource, "groupingId")) elements.emplace_back(*grouping);
    else out.ungrouped.push_back(reference);
    if (const json::Value* extensions = json::find(resource, "extension")) {
      for (const json::Value& extension : extensions->GetArray()) {
        if (str(extension, "url") == kDesignElement) elements.push_back(str(extension, "valueId"));
      }
    }
    const std::string type = reference.substr(0, reference.find('/'));
    const std::string id = reference.substr(reference.find('/') + 1);
    for (const std::string& element : elements) {
      auto found = out.columns.find(element);
      if (found == out.columns.end()) {
        ADD_FAILURE() << reference << " names design element '" << element << "', which is not a grouping";
        continue;
      }
      if (type == "StructureDefinition") found->second.profiles.insert(id);
      else if (type == "Basic") found->second.topics.insert(id);
      else found->second.terminology.insert(reference);
    }
  }
  return out;
}

// The table rows of docs/alignment-ig.md, by the grouping id in backticks in the first cell.
std::map<std::string, std::vector<std::string>> readTable(std::vector<std::string>& order) {
  std::map<std::string, std::vector<std::string>> rows;
  std::istringstream doc(testing::readFile(fs::path(GATEWAY_SOURCE_DIR) / "docs" / "alignment-ig.md"));
  std::string line;
  bool in_table = false;
  while (std::getline(doc, line)) {
    if (line.rfind("| Design element |", 0) == 0) {
      in_table = true;
      continue;
    }
    if (!in_table) continue;
    if (line.rfind("|---", 0) == 0) continue;
    if (line.rfind("| ", 0) != 0) break;
    std::vector<std::string> cells;
    std::string body = line.substr(2, line.size() >= 4 ? line.size() - 4 : 0);  // without "| " and " |"
    size_t start = 0;
    while (true) {
      size_t end = body.find(" | ", start);
      cells.push_back(body.substr(start, end == std::string::npos ? std::string::npos : end - start));
      if (end == std::string::npos) break;
      start = end + 3;
    }
    const std::string& first = cells[0];
    size_t close = first.rfind('`');
    size_t open = close == std::string::npos || close == 0 ? std::string::npos : first.rfind('`', close - 1);
    if (open == std::string::npos) {
      ADD_FAILURE() << "row without a `grouping id` in its first cell: " << line;
      continue;
    }
    const std::string id = first.substr(open + 1, close - open - 1);
    order.push_back(id);
    rows[id] = std::move(cells);
  }
  return rows;
}

TEST(AlignmentIgTable, GeneratedColumnsMatchThePackage) {
  Package package = readPackage();
  std::vector<std::string> order;
  auto rows = readTable(order);
  // The ten design elements of the program, and the shared foundation.
  const std::vector<std::string> elements = {"payment-tracks", "quality-equity", "data-provision", "econsult",
                                             "comanagement", "care-management", "community-connections",
                                             "behavioral-health", "attribution", "unified-reporting", "foundation"};
  EXPECT_EQ(package.grouping_ids, elements);
  EXPECT_EQ(order, elements) << "docs/alignment-ig.md rows, in the grouping order";
  for (const std::string& element : package.grouping_ids) {
    auto row = rows.find(element);
    if (row == rows.end()) {
      ADD_FAILURE() << "docs/alignment-ig.md has no row for design element `" << element << "`";
      continue;
    }
    ASSERT_EQ(row->second.size(), 7u) << "row `" << element << "` needs 7 cells";
    const Columns& expected = package.columns[element];
    EXPECT_EQ(row->second[1], cell(expected.profiles)) << "`" << element << "` profiles and extensions";
    EXPECT_EQ(row->second[2], cell(expected.topics)) << "`" << element << "` topics";
    EXPECT_EQ(row->second[3], cell(expected.terminology)) << "`" << element << "` terminology";
    for (size_t index = 4; index < 7; ++index) {
      EXPECT_FALSE(row->second[index].empty()) << "`" << element << "` cell " << index << " is empty (write \"not yet\")";
    }
  }
  EXPECT_TRUE(package.ungrouped.empty()) << "ImplementationGuide resources without a groupingId: " << package.ungrouped.size()
                                         << (package.ungrouped.empty() ? "" : ", first " + package.ungrouped[0]);
}

TEST(AlignmentIgTable, EveryPackageResourceIsInTheImplementationGuide) {
  Package package = readPackage();
  size_t files = 0;
  for (const auto& entry : fs::directory_iterator(packageDir())) {
    const std::string name = entry.path().filename().string();
    if (entry.path().extension() != ".json" || name == "package.json" || name == ".index.json" ||
        name.rfind("ImplementationGuide-", 0) == 0) {
      continue;
    }
    json::Document resource = load(entry.path());
    if (!resource.IsObject()) continue;
    const std::string reference = str(resource, "resourceType") + "/" + str(resource, "id");
    EXPECT_TRUE(package.listed.count(reference)) << name << " (" << reference << ") is not in ImplementationGuide-alignment.json";
    ++files;
  }
  EXPECT_GE(files, 70u);
}

}  // namespace
}  // namespace fhir
