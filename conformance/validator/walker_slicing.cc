// SPDX-License-Identifier: Apache-2.0
// Slicing: which slice an item matches (discriminators value, pattern, type, profile, exists),
// closed slicing, and the minimum and maximum of every slice.
#include "conformance/validator/instance_walker.h"

#include "conformance/validator/validator_impl.h"
#include "conformance/validator/walker_util.h"

namespace fhir::validator {

namespace {

std::vector<std::string_view> splitPath(std::string_view path) {
  std::vector<std::string_view> segments;
  size_t depth = 0, start = 0;
  for (size_t i = 0; i < path.size(); ++i) {
    char c = path[i];
    if (c == '(') ++depth;
    if (c == ')' && depth > 0) --depth;
    if (c == '.' && depth == 0) {
      segments.push_back(path.substr(start, i - start));
      start = i + 1;
    }
  }
  segments.push_back(path.substr(start));
  return segments;
}

// "extension('http://x')" -> "http://x"
std::optional<std::string_view> extensionFilter(std::string_view segment) {
  constexpr std::string_view kPrefix = "extension(";
  if (segment.compare(0, kPrefix.size(), kPrefix) != 0 || segment.size() < kPrefix.size() + 3) return std::nullopt;
  std::string_view inner = segment.substr(kPrefix.size(), segment.size() - kPrefix.size() - 1);
  if (inner.size() >= 2 && (inner.front() == '\'' || inner.front() == '"')) inner = inner.substr(1, inner.size() - 2);
  return inner;
}

// Instance values at a discriminator path below `item` (arrays flattened). Returns false when
// the path uses something we cannot follow (resolve()).
bool valuesAt(const json::Value& item, std::string_view path, std::vector<const json::Value*>& out) {
  std::vector<const json::Value*> current{&item};
  for (std::string_view segment : splitPath(path)) {
    if (segment == "$this" || segment.compare(0, 7, "ofType(") == 0) continue;
    if (segment == "resolve()") return false;
    std::vector<const json::Value*> next;
    auto filter = extensionFilter(segment);
    std::string_view name = filter ? std::string_view("extension") : segment;
    for (const json::Value* node : current) {
      if (!node->IsObject()) continue;
      const json::Value* child = json::find(*node, name);
      if (!child) {
        // A choice element named without its type: the first member with that prefix.
        for (auto it = node->MemberBegin(); it != node->MemberEnd() && !child; ++it) {
          std::string_view member(it->name.GetString(), it->name.GetStringLength());
          if (member.size() > name.size() && member.compare(0, name.size(), name) == 0 &&
              std::isupper(static_cast<unsigned char>(member[name.size()]))) {
            child = &it->value;
          }
        }
      }
      if (!child) continue;
      auto push = [&](const json::Value& value) {
        if (filter && (!value.IsObject() || json::getString(value, "url") != *filter)) return;
        next.push_back(&value);
      };
      if (child->IsArray()) {
        for (const json::Value& value : child->GetArray()) push(value);
      } else {
        push(*child);
      }
    }
    current = std::move(next);
  }
  out = std::move(current);
  return true;
}

// The element of `slice` a discriminator path designates, or nullptr when the slice does not
// constrain that far.
const ElementPlan* elementAt(const ElementPlan& slice, std::string_view path) {
  const ElementPlan* current = &slice;
  for (std::string_view segment : splitPath(path)) {
    if (segment == "$this" || segment.compare(0, 7, "ofType(") == 0) continue;
    auto filter = extensionFilter(segment);
    std::string_view name = filter ? std::string_view("extension") : segment;
    const ElementPlan* next = nullptr;
    for (const ElementPlan* child : current->children) {
      if (child->name == name) next = child;
    }
    // Constraints may sit in the slices of the element only (code.coding:SBPCode.code).
    for (size_t index = 0; !next && index < current->slices.size(); ++index) {
      for (const ElementPlan* child : current->slices[index]->children) {
        if (child->name == name) next = child;
      }
    }
    if (!next) return nullptr;
    if (filter) {
      const ElementPlan* chosen = nullptr;
      for (const ElementPlan* candidate : next->slices) {
        for (const TypeRef& type : candidate->types) {
          for (const std::string& profile : type.profiles) {
            if (definitions::canonicalUrl(profile) == *filter) chosen = candidate;
          }
        }
      }
      if (!chosen) return nullptr;
      next = chosen;
    }
    current = next;
  }
  return current;
}

}  // namespace

bool InstanceWalker::matchesSlice(const json::Value* value, std::string_view type,
                                  const ElementPlan& element, const ElementPlan& slice,
                                  const StructurePlan& plan) {
  if (!value) return false;
  for (const Discriminator& discriminator : element.slicing->discriminators) {
    const std::string& path = discriminator.path;
    std::vector<const json::Value*> found;
    if (!valuesAt(*value, path, found)) return false;
    const ElementPlan* target = elementAt(slice, path);
    if (discriminator.type == "exists") {
      if (!target) continue;
      if (target->min > 0 && found.empty()) return false;
      if (target->max == 0 && !found.empty()) return false;
      continue;
    }
    if (discriminator.type == "type") {
      std::string_view actual = type;
      if (path != "$this" && !found.empty() && found.front()->IsObject()) {
        if (auto resource_type = json::getString(*found.front(), "resourceType")) actual = *resource_type;
      }
      if (path == "$this" && value->IsObject()) {
        if (auto resource_type = json::getString(*value, "resourceType")) actual = *resource_type;
      }
      const ElementPlan* typed = target ? target : &slice;
      bool ok = false;
      for (const TypeRef& ref : typed->types) ok = ok || ref.code == actual;
      if (!ok && !typed->types.empty()) return false;
      continue;
    }
    if (discriminator.type == "profile") {
      const ElementPlan* typed = target ? target : &slice;
      std::vector<std::string> profiles;
      for (const TypeRef& ref : typed->types) {
        profiles.insert(profiles.end(), ref.profiles.begin(), ref.profiles.end());
      }
      if (profiles.empty()) continue;
      bool ok = false;
      for (const json::Value* node : found) {
        for (const std::string& url : profiles) ok = ok || conformsTo(*node, url, &plan);
      }
      if (!ok) return false;
      continue;
    }
    // value / pattern
    const json::Value* expected = nullptr;
    std::string expected_url;
    if (target) expected = target->fixed ? target->fixed : target->pattern;
    if (!expected && (path == "url" || (path.size() > 4 && path.compare(path.size() - 4, 4, ".url") == 0))) {
      // Extension slices name their definition in type.profile rather than fixing url.
      std::string_view owner_path = path == "url" ? std::string_view("$this") : std::string_view(path).substr(0, path.size() - 4);
      const ElementPlan* owner = elementAt(slice, owner_path);
      if (owner) {
        for (const TypeRef& ref : owner->types) {
          if (!ref.profiles.empty()) expected_url = std::string(definitions::canonicalUrl(ref.profiles.front()));
        }
      }
    }
    if (!expected_url.empty()) {
      bool ok = false;
      for (const json::Value* node : found) ok = ok || (json::isString(*node) && json::stringView(*node) == expected_url);
      if (!ok) return false;
      continue;
    }
    if (!expected && target && target != &slice &&
        (!target->children.empty() || !target->slices.empty())) {
      // No fixed/pattern value at the path, but the slice constrains what is below it (e.g.
      // code.coding slices with fixed system and code): the value matches when it conforms.
      bool ok = false;
      for (const json::Value* node : found) ok = ok || (node->IsObject() && conformsToElement(*node, *target, plan));
      if (!ok) return false;
      continue;
    }
    if (!expected) {
      if (target && target->binding && target->binding->strength == BindingStrength::kRequired) {
        const terminology::Terminology& terminology = validator_.terminology();
        const terminology::Expansion& expansion = terminology.expand(target->binding->value_set);
        bool ok = false;
        for (const json::Value* node : found) {
          if (json::isString(*node)) {
            ok = ok || terminology.contains(expansion, "", json::stringView(*node)) == terminology::Membership::kMember;
          } else if (node->IsObject()) {
            std::vector<const json::Value*> codings;
            if (const json::Value* list = json::find(*node, "coding"); list && list->IsArray()) {
              for (const json::Value& coding : list->GetArray()) codings.push_back(&coding);
            } else {
              codings.push_back(node);
            }
            for (const json::Value* coding : codings) {
              auto system = json::getString(*coding, "system");
              auto code = json::getString(*coding, "code");
              if (code) {
                ok = ok || terminology.contains(expansion, system.value_or(""), *code) == terminology::Membership::kMember;
              }
            }
          }
        }
        if (!ok) return false;
      }
      continue;
    }
    bool ok = false;
    for (const json::Value* node : found) {
      ok = ok || (discriminator.type == "value" && target->fixed ? matchesFixed(*node, *expected)
                                                                 : matchesPattern(*node, *expected));
    }
    if (!ok) return false;
  }
  return true;
}

bool InstanceWalker::conformsToElement(const json::Value& value, const ElementPlan& element,
                                       const StructurePlan& plan) {
  IssueList scratch;
  InstanceWalker walker(validator_, scratch);
  walker.path_ = path_;
  walker.resource_ = resource_;
  walker.root_resource_ = root_resource_;
  walker.container_ = container_;
  walker.bundle_ = bundle_;
  walker.conformance_depth_ = conformance_depth_ + 1;
  walker.conformance_memo_ = conformance_memo_;
  walker.walkObject(value, element, plan, false);
  depth_limited_ = depth_limited_ || walker.depth_limited_;
  return !scratch.hasErrors();
}

// A resource (not a contained one) that was just walked against its type and `targets` without an
// error conforms to each of them: the walk conformsTo() would make for one of them is this walk
// (validateResource with that profile added to the ones it declares), so a reference to it
// asked about later finds the answer (as asked one level above this walker's depth).
void InstanceWalker::rememberConformance(const json::Value& resource, const std::vector<std::string>& targets,
                                         size_t issues_before) {
  if (targets.empty()) return;
  const std::vector<Issue>& issues = issues_.issues();
  for (size_t i = issues_before; i < issues.size(); ++i) {
    if (issues[i].severity == Severity::kError || issues[i].severity == Severity::kFatal) return;
  }
  if (!conformance_memo_) conformance_memo_ = std::make_shared<ConformanceMemo>();
  for (const std::string& url : targets) {
    const StructurePlan* profile = plans_.byUrl(url);
    if (!profile || !profile->root || profile->kind != "resource") continue;
    (*conformance_memo_)[ConformanceKey{&resource, bundle_, profile->versionedUrl()}].push_back(
        ConformanceAnswer{true, conformance_depth_ - 1, depth_limited_});
  }
}

// The checks a walk makes differ between depths only where it reaches the depth limit
// (checkReferencedProfile). A walk that never reached it makes the same checks from any
// shallower depth; a deeper walk makes a subset of them, so what conformed still conforms.
bool InstanceWalker::ConformanceAnswer::reusableAt(int asked) const {
  if (asked == depth) return true;
  if (asked < depth) return !depth_limited;
  return conforms;
}

bool InstanceWalker::conformsTo(const json::Value& value, const std::string& url,
                                const StructurePlan* from) {
  const StructurePlan* profile = plans_.byUrl(url, from);
  if (!profile || !profile->root) return false;
  const bool is_resource = profile->kind == "resource";
  ConformanceKey key;
  if (is_resource) {
    if (!conformance_memo_) conformance_memo_ = std::make_shared<ConformanceMemo>();
    key = ConformanceKey{&value, bundle_, profile->versionedUrl()};
    if (auto known = conformance_memo_->find(key); known != conformance_memo_->end()) {
      for (const ConformanceAnswer& answer : known->second) {
        if (!answer.reusableAt(conformance_depth_)) continue;
        // What this walker concludes from it is as depth-bound as the answer (a true answer from
        // an unlimited walk holds at every depth).
        depth_limited_ = depth_limited_ || answer.depth_limited;
        return answer.conforms;
      }
    }
  }
  IssueList scratch;
  InstanceWalker walker(validator_, scratch);
  walker.path_ = path_;
  walker.resource_ = resource_;
  walker.root_resource_ = root_resource_;
  walker.container_ = container_;
  walker.bundle_ = bundle_;
  walker.conformance_depth_ = conformance_depth_ + 1;
  walker.conformance_memo_ = conformance_memo_;
  if (is_resource) {
    std::vector<std::string> profiles{profile->versionedUrl()};
    walker.validateResource(value, &profiles);
  } else if (value.IsObject()) {
    walker.walkObject(value, *profile->root, *profile, false);
  }
  const bool conforms = !scratch.hasErrors();
  depth_limited_ = depth_limited_ || walker.depth_limited_;
  if (is_resource) (*conformance_memo_)[key].push_back(ConformanceAnswer{conforms, conformance_depth_, walker.depth_limited_});
  return conforms;
}

void InstanceWalker::dispatchItem(const json::Value* value, const json::Value* extension,
                                  const ElementPlan& element, std::string_view type,
                                  const StructurePlan& plan, bool resource_id,
                                  std::vector<uint32_t>& slice_counts) {
  if (!element.slicing || element.slices.empty()) {
    validateItem(value, extension, element, type, plan, resource_id);
    return;
  }
  const ElementPlan* chosen = nullptr;
  for (size_t index = 0; index < element.slices.size(); ++index) {
    const ElementPlan& slice = *element.slices[index];
    // A type slice of a choice element is named after the concrete type (valueQuantity).
    if (element.choice && element.slicing->discriminators.size() == 1 &&
        element.slicing->discriminators.front().type == "type") {
      bool ok = false;
      for (const TypeRef& ref : slice.types) ok = ok || ref.code == type;
      if (!ok) continue;
    } else if (!matchesSlice(value, type, element, slice, plan)) {
      continue;
    }
    chosen = &slice;
    ++slice_counts[index];
    break;
  }
  if (chosen) {
    validateItem(value, extension, *chosen, type, plan, resource_id);
    return;
  }
  validateItem(value, extension, element, type, plan, resource_id);
  if (element.slicing->rules == SlicingRules::kClosed) {
    report(Severity::kError, "structure",
           "This element does not match any known slice defined in the profile " +
               plan.versionedUrl() + " and slicing is CLOSED: " + element.path);
  }
}

void InstanceWalker::checkSliceCounts(const ElementPlan& element,
                                      const std::vector<uint32_t>& slice_counts,
                                      size_t parent_size, const StructurePlan& plan) {
  for (size_t index = 0; index < slice_counts.size(); ++index) {
    const ElementPlan& slice = *element.slices[index];
    uint32_t found = slice_counts[index];
    std::string name = element.path + ":" + slice.slice_name;
    if (found < slice.min) {
      reportAt(Severity::kError, "structure", path_.substr(0, parent_size),
               found == 0 ? "Slice '" + name + "': a matching slice is required, but not found (from " +
                                plan.versionedUrl() + ")"
                          : name + ": minimum required = " + std::to_string(slice.min) +
                                ", but only found " + std::to_string(found) + " (from " +
                                plan.versionedUrl() + ")");
    }
    if (slice.max != UINT32_MAX && found > slice.max) {
      reportAt(Severity::kError, "structure", path_.substr(0, parent_size),
               name + ": max allowed = " + std::to_string(slice.max) + ", but found " +
                   std::to_string(found) + " (from " + plan.versionedUrl() + ")");
    }
  }
}

}  // namespace fhir::validator
