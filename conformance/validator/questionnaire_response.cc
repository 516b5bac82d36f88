// SPDX-License-Identifier: Apache-2.0
#include "conformance/validator/questionnaire_response.h"

#include "conformance/regex/regex.h"
#include "conformance/validator/primitives.h"

#include <cctype>
#include <cmath>
#include <vector>

namespace fhir::validator {
namespace {

constexpr std::string_view kCore = "http://hl7.org/fhir/StructureDefinition/";
constexpr std::string_view kSdc = "http://hl7.org/fhir/uv/sdc/StructureDefinition/";

std::string str(const json::Value& object, std::string_view key) {
  auto value = json::getString(object, key);
  return value ? std::string(*value) : std::string();
}

const json::Value* array(const json::Value& object, std::string_view key) {
  const json::Value* value = object.IsObject() ? json::find(object, key) : nullptr;
  return value && value->IsArray() ? value : nullptr;
}

// The `value[x]` member of an object: sets `type` to the suffix ("Coding", "String").
const json::Value* valueOf(const json::Value& object, std::string& type) {
  if (!object.IsObject()) return nullptr;
  for (auto it = object.MemberBegin(); it != object.MemberEnd(); ++it) {
    std::string_view name(it->name.GetString(), it->name.GetStringLength());
    if (name.size() > 5 && name.compare(0, 5, "value") == 0) {
      type = std::string(name.substr(5));
      return &it->value;
    }
  }
  return nullptr;
}

// Extensions of `item` with `url` (either the core or the SDC namespace name).
std::vector<const json::Value*> extensions(const json::Value& item, std::string_view name) {
  std::vector<const json::Value*> out;
  const json::Value* list = array(item, "extension");
  if (!list) return out;
  for (const json::Value& extension : list->GetArray()) {
    auto url = json::getString(extension, "url");
    if (!url) continue;
    std::string_view text = *url;
    if ((text.size() == kCore.size() + name.size() && text.compare(0, kCore.size(), kCore) == 0 &&
         text.substr(kCore.size()) == name) ||
        (text.size() == kSdc.size() + name.size() && text.compare(0, kSdc.size(), kSdc) == 0 &&
         text.substr(kSdc.size()) == name)) {
      out.push_back(&extension);
    }
  }
  return out;
}

const json::Value* extensionValue(const json::Value& item, std::string_view name, std::string& type) {
  auto found = extensions(item, name);
  return found.empty() ? nullptr : valueOf(*found.front(), type);
}

std::string lowerFirst(std::string text) {
  if (!text.empty()) text[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(text[0])));
  return text;
}

std::string scalarText(const json::Value& value) {
  if (json::isString(value)) return std::string(json::stringView(value));
  if (json::isNumber(value)) return json::numberText(value);
  if (value.IsBool()) return value.GetBool() ? "true" : "false";
  return std::string();
}

// Expected answer value types for a Questionnaire item type.
std::vector<std::string> answerTypes(const std::string& item_type) {
  if (item_type == "boolean") return {"Boolean"};
  if (item_type == "decimal") return {"Decimal"};
  if (item_type == "integer") return {"Integer"};
  if (item_type == "date") return {"Date"};
  if (item_type == "dateTime") return {"DateTime"};
  if (item_type == "time") return {"Time"};
  if (item_type == "string" || item_type == "text") return {"String"};
  if (item_type == "url") return {"Uri"};
  // The reference validator accepts a string answer to an R4 choice question.
  if (item_type == "choice") return {"Coding", "String"};
  if (item_type == "open-choice") return {"Coding", "String"};
  if (item_type == "attachment") return {"Attachment"};
  if (item_type == "reference") return {"Reference"};
  if (item_type == "quantity") return {"Quantity"};
  return {};
}

class Checker {
 public:
  Checker(const json::Value& response, const terminology::Terminology& terminology,
          const std::function<bool(std::string_view)>& is_resource_type, IssueList& issues)
      : response_(response), terminology_(terminology), is_resource_type_(is_resource_type), issues_(issues) {}

  void items(const json::Value* q_items, const json::Value* r_items, const std::string& path);

 private:
  void error(const std::string& path, std::string code, std::string text) {
    issues_.atExpression(Severity::kError, std::move(code), path, std::move(text));
  }
  void item(const json::Value& q_item, const json::Value& r_item, const std::string& path);
  void answer(const json::Value& q_item, const json::Value& answer, const std::string& path,
              size_t answer_count);
  bool enabled(const json::Value& q_item) const;
  void collectAnswers(const json::Value& node, std::string_view link_id,
                      std::vector<const json::Value*>& out) const;

  const json::Value& response_;
  const terminology::Terminology& terminology_;
  const std::function<bool(std::string_view)>& is_resource_type_;
  IssueList& issues_;
};

void Checker::collectAnswers(const json::Value& node, std::string_view link_id,
                             std::vector<const json::Value*>& out) const {
  const json::Value* list = array(node, "item");
  if (!list) return;
  for (const json::Value& r_item : list->GetArray()) {
    bool match = json::getString(r_item, "linkId") == link_id;
    if (const json::Value* answers = array(r_item, "answer")) {
      for (const json::Value& answer : answers->GetArray()) {
        if (match) out.push_back(&answer);
        collectAnswers(answer, link_id, out);
      }
    }
    collectAnswers(r_item, link_id, out);
  }
}

bool Checker::enabled(const json::Value& q_item) const {
  const json::Value* conditions = array(q_item, "enableWhen");
  if (!conditions || conditions->Empty()) return true;
  bool any = str(q_item, "enableBehavior") == "any";
  bool result = !any;
  for (const json::Value& condition : conditions->GetArray()) {
    std::vector<const json::Value*> answers;
    collectAnswers(response_, str(condition, "question"), answers);
    std::string op = str(condition, "operator");
    std::string expected_type;
    const json::Value* expected = nullptr;
    for (auto it = condition.MemberBegin(); it != condition.MemberEnd(); ++it) {
      std::string_view name(it->name.GetString(), it->name.GetStringLength());
      if (name.size() > 6 && name.compare(0, 6, "answer") == 0) {
        expected_type = std::string(name.substr(6));
        expected = &it->value;
      }
    }
    bool satisfied = false;
    if (op == "exists") {
      bool want = expected && expected->IsBool() && expected->GetBool();
      satisfied = answers.empty() != want;
    } else if (expected) {
      for (const json::Value* answer : answers) {
        std::string type;
        const json::Value* value = valueOf(*answer, type);
        if (!value) continue;
        int comparison = 0;
        bool comparable = true;
        if (expected_type == "Coding" && value->IsObject() && expected->IsObject()) {
          bool same = str(*value, "code") == str(*expected, "code") &&
                      (str(*expected, "system").empty() || str(*value, "system") == str(*expected, "system"));
          comparison = same ? 0 : 1;
          comparable = op == "=" || op == "!=";
        } else if (json::isNumber(*value) && json::isNumber(*expected)) {
          double left = json::numberAsDouble(*value).value_or(0);
          double right = json::numberAsDouble(*expected).value_or(0);
          comparison = left < right ? -1 : left > right ? 1 : 0;
        } else {
          std::string left = scalarText(*value);
          std::string right = scalarText(*expected);
          comparison = left < right ? -1 : left > right ? 1 : 0;
        }
        if (!comparable) continue;
        if ((op == "=" && comparison == 0) || (op == "!=" && comparison != 0) ||
            (op == ">" && comparison > 0) || (op == "<" && comparison < 0) ||
            (op == ">=" && comparison >= 0) || (op == "<=" && comparison <= 0)) {
          satisfied = true;
        }
      }
    }
    result = any ? (result || satisfied) : (result && satisfied);
  }
  return result;
}

void Checker::items(const json::Value* q_items, const json::Value* r_items, const std::string& path) {
  std::vector<const json::Value*> questions;
  if (q_items) {
    for (const json::Value& q_item : q_items->GetArray()) questions.push_back(&q_item);
  }
  auto findQuestion = [&](std::string_view link_id) -> const json::Value* {
    for (const json::Value* question : questions) {
      if (json::getString(*question, "linkId") == link_id) return question;
    }
    return nullptr;
  };
  if (r_items) {
    for (rapidjson::SizeType index = 0; index < r_items->Size(); ++index) {
      const json::Value& r_item = (*r_items)[index];
      if (!r_item.IsObject()) continue;
      std::string link_id = str(r_item, "linkId");
      const json::Value* q_item = findQuestion(link_id);
      if (!q_item) {
        error(path, "not-found", "LinkId '" + link_id + "' not found in questionnaire");
        continue;
      }
      item(*q_item, r_item, path + ".item[" + std::to_string(index) + "]");
    }
  }
  for (const json::Value* question : questions) {
    std::string link_id = str(*question, "linkId");
    size_t occurrences = 0;
    if (r_items) {
      for (const json::Value& r_item : r_items->GetArray()) {
        if (json::getString(r_item, "linkId") == link_id) ++occurrences;
      }
    }
    const json::Value* repeats = json::find(*question, "repeats");
    bool repeating = repeats && repeats->IsBool() && repeats->GetBool();
    std::string type = str(*question, "type");
    if (occurrences > 1 && !repeating && type != "group") {
      error(path, "structure", "Only one response item with this linkId allowed ('" + link_id + "')");
    }
    const json::Value* required = json::find(*question, "required");
    if (occurrences == 0 && required && required->IsBool() && required->GetBool() &&
        type != "display" && enabled(*question)) {
      error(path, "required", "No response answer found for required item '" + link_id + "'");
    }
  }
}

void Checker::item(const json::Value& q_item, const json::Value& r_item, const std::string& path) {
  std::string type = str(q_item, "type");
  const json::Value* answers = array(r_item, "answer");
  size_t answer_count = answers ? answers->Size() : 0;
  const json::Value* required = json::find(q_item, "required");
  bool is_required = required && required->IsBool() && required->GetBool();
  const json::Value* repeats = json::find(q_item, "repeats");
  bool repeating = repeats && repeats->IsBool() && repeats->GetBool();

  if (type == "display") {
    if (answer_count > 0) error(path, "structure", "Items of type 'display' cannot have answers");
    return;
  }
  if (type == "group" || type == "question") {
    if (answer_count > 0) {
      error(path, "structure", "Items of type " + type + " should not have answers");
    }
    const json::Value* sub_items = array(r_item, "item");
    if (type == "group" && is_required && (!sub_items || sub_items->Empty())) {
      error(path, "required", "No sub-items found for required group");
    }
    items(array(q_item, "item"), sub_items, path);
    return;
  }
  if (is_required && answer_count == 0 && enabled(q_item)) {
    error(path, "required", "No response answer found for required item '" + str(q_item, "linkId") + "'");
  }
  if (answer_count > 1 && !repeating) {
    error(path, "structure", "Only one response answer item with this linkId allowed");
  }
  std::string ext_type;
  if (const json::Value* min = extensionValue(q_item, "questionnaire-minOccurs", ext_type);
      min && json::isNumber(*min)) {
    int64_t wanted = json::numberAsInt64(*min).value_or(0);
    if (static_cast<int64_t>(answer_count) < wanted) {
      error(path, "structure", "The minimum number of answers is " + std::to_string(wanted) +
                                   " but this has " + std::to_string(answer_count) + " answers");
    }
  }
  if (const json::Value* max = extensionValue(q_item, "questionnaire-maxOccurs", ext_type);
      max && json::isNumber(*max) && repeating) {
    int64_t allowed = json::numberAsInt64(*max).value_or(0);
    if (static_cast<int64_t>(answer_count) > allowed) {
      error(path, "structure", "The maximum number of answers is " + std::to_string(allowed) +
                                   " but this has " + std::to_string(answer_count) + " answers");
    }
  }
  if (answers) {
    // Exclusive options: selected together with anything else.
    const json::Value* options = array(q_item, "answerOption");
    for (rapidjson::SizeType index = 0; index < answers->Size(); ++index) {
      std::string answer_path = path + ".answer[" + std::to_string(index) + "]";
      answer(q_item, (*answers)[index], answer_path, answer_count);
      if (options && answer_count > 1) {
        std::string answer_type;
        const json::Value* value = valueOf((*answers)[index], answer_type);
        for (const json::Value& option : options->GetArray()) {
          std::string option_type;
          const json::Value* option_value = valueOf(option, option_type);
          std::string exclusive_type;
          const json::Value* exclusive = extensionValue(option, "questionnaire-optionExclusive", exclusive_type);
          if (!exclusive || !exclusive->IsBool() || !exclusive->GetBool() || !value || !option_value) continue;
          bool same = option_type == "Coding"
                          ? value->IsObject() && str(*value, "code") == str(*option_value, "code") &&
                                str(*value, "system") == str(*option_value, "system")
                          : scalarText(*value) == scalarText(*option_value);
          if (same) {
            error(answer_path, "invariant",
                  "Selected answer " +
                      (option_type == "Coding" ? str(*value, "system") + "#" + str(*value, "code")
                                               : scalarText(*value)) +
                      " is an exclusive option - can't select anything else at the same time");
          }
        }
      }
      if (const json::Value* nested = array((*answers)[index], "item")) {
        items(array(q_item, "item"), nested, answer_path);
      }
    }
  }
  if (const json::Value* sub_items = array(r_item, "item")) items(array(q_item, "item"), sub_items, path);
}

void Checker::answer(const json::Value& q_item, const json::Value& answer, const std::string& path,
                     size_t /*answer_count*/) {
  std::string type;
  const json::Value* value = valueOf(answer, type);
  if (!value) return;
  std::string item_type = str(q_item, "type");
  std::vector<std::string> allowed = answerTypes(item_type);
  std::string value_path = path + ".value.ofType(" +
                           (value->IsObject() ? type : lowerFirst(type)) + ")";
  if (!allowed.empty() && std::find(allowed.begin(), allowed.end(), type) == allowed.end()) {
    std::string expected = allowed.front() == "Uri" ? "uri" : allowed.front();
    if (!value->IsObject() || expected == "Boolean" || expected == "Decimal" || expected == "Integer" ||
        expected == "Date" || expected == "DateTime" || expected == "Time" || expected == "String") {
      expected = lowerFirst(expected);
    }
    if (expected == "coding") expected = "Coding";
    error(value_path, "invariant",
          "Answer value must be of the type " + expected + " not " +
              (value->IsObject() ? type : lowerFirst(type)));
    return;
  }
  std::string ext_type;
  // answerOption membership.
  if (const json::Value* options = array(q_item, "answerOption")) {
    bool found = false;
    for (const json::Value& option : options->GetArray()) {
      std::string option_type;
      const json::Value* option_value = valueOf(option, option_type);
      if (!option_value || option_type != type) continue;
      if (type == "Coding") {
        found = found || (value->IsObject() && str(*value, "code") == str(*option_value, "code") &&
                          (str(*option_value, "system").empty() ||
                           str(*value, "system") == str(*option_value, "system")));
      } else if (type == "Reference") {
        found = found || str(*value, "reference") == str(*option_value, "reference");
      } else {
        found = found || scalarText(*value) == scalarText(*option_value);
      }
    }
    bool open = item_type == "open-choice" && type == "String";
    if (!found && !open) {
      if (type == "Coding") {
        error(path, "invariant", "The code " + str(*value, "system") + "::" + str(*value, "code") +
                                     " is not in the set of permitted values");
      } else {
        error(value_path, "invariant",
              "The " + lowerFirst(type) + " " + scalarText(*value) + " is not in the set of permitted values");
      }
    }
  } else if (auto value_set = json::getString(q_item, "answerValueSet"); value_set && type == "Coding") {
    const terminology::Expansion& expansion = terminology_.expand(*value_set);
    if (expansion.found &&
        terminology_.contains(expansion, str(*value, "system"), str(*value, "code")) ==
            terminology::Membership::kNotMember) {
      error(path, "code-invalid", "The code '" + str(*value, "code") + "' in the system '" +
                                      str(*value, "system") + "' is not in the options value set (" +
                                      expansion.label() + ") specified by the questionnaire");
    }
  }
  // Ranges.
  auto compare = [&](const json::Value& bound, bool is_min) {
    int comparison = 0;
    if (json::isNumber(*value) && json::isNumber(bound)) {
      double left = json::numberAsDouble(*value).value_or(0);
      double right = json::numberAsDouble(bound).value_or(0);
      comparison = left < right ? -1 : left > right ? 1 : 0;
    } else {
      std::string left = scalarText(*value);
      std::string right = scalarText(bound);
      comparison = left < right ? -1 : left > right ? 1 : 0;
    }
    if (is_min && comparison < 0) {
      error(value_path, "invariant", "The value " + scalarText(*value) +
                                         " is less than the allowed minimum of " + scalarText(bound));
    }
    if (!is_min && comparison > 0) {
      error(value_path, "invariant", "The value " + scalarText(*value) +
                                         " is greater than the allowed maximum of " + scalarText(bound));
    }
  };
  if (type != "Quantity" && type != "Coding" && type != "Attachment" && type != "Reference") {
    if (const json::Value* min = extensionValue(q_item, "minValue", ext_type)) compare(*min, true);
    if (const json::Value* max = extensionValue(q_item, "maxValue", ext_type)) compare(*max, false);
  }
  if (type == "String") {
    std::string text = scalarText(*value);
    if (const json::Value* max = json::find(q_item, "maxLength"); max && json::isNumber(*max)) {
      int64_t limit = json::numberAsInt64(*max).value_or(0);
      if (static_cast<int64_t>(text.size()) > limit) {
        error(value_path, "invariant", "The answer '" + text + "' is longer then the allowed maximum length of " +
                                           std::to_string(limit));
      }
    }
    if (const json::Value* min = extensionValue(q_item, "minLength", ext_type); min && json::isNumber(*min)) {
      int64_t limit = json::numberAsInt64(*min).value_or(0);
      if (static_cast<int64_t>(text.size()) < limit) {
        error(value_path, "invariant", "The answer '" + text + "' is shorter then the required minimum length of " +
                                           std::to_string(limit));
      }
    }
    if (const json::Value* pattern = extensionValue(q_item, "regex", ext_type); pattern && json::isString(*pattern)) {
      // Whole-value match, RE2 (linear time): the pattern and the answer both come from senders.
      std::string_view source = json::stringView(*pattern);
      auto compiled = regex::Regex::cached(source, regex::Dialect::kFhir);
      if (!compiled.ok()) {
        issues_.atExpression(Severity::kWarning, "processing", value_path,
                             "The answer was not checked against the Questionnaire's regex: " +
                                 compiled.message());
      } else if (!(*compiled)->matchesWhole(text)) {
        error(value_path, "invariant", "The answer '" + text + "' does not match the regular expression " +
                                           std::string(source));
      }
    }
  }
  if (type == "Decimal") {
    if (const json::Value* places = extensionValue(q_item, "maxDecimalPlaces", ext_type);
        places && json::isNumber(*places) && json::isNumber(*value)) {
      std::string text = json::numberText(*value);
      size_t dot = text.find('.');
      int64_t count = dot == std::string::npos ? 0 : static_cast<int64_t>(text.size() - dot - 1);
      int64_t limit = json::numberAsInt64(*places).value_or(0);
      if (count > limit) {
        error(value_path, "invariant", "The value " + text + " has too many decimal places (limit = " +
                                           std::to_string(limit) + ")");
      }
    }
  }
  if (type == "Quantity" && value->IsObject()) {
    auto checkBound = [&](std::string_view name, bool is_min) {
      std::string bound_type;
      const json::Value* bound = extensionValue(q_item, name, bound_type);
      if (!bound || !bound->IsObject()) return;
      const json::Value* amount = json::find(*value, "value");
      const json::Value* limit = json::find(*bound, "value");
      if (!amount || !limit || !json::isNumber(*amount) || !json::isNumber(*limit)) return;
      std::string unit = str(*value, "code");
      std::string bound_unit = str(*bound, "code");
      std::string label = json::numberText(*amount) + " " + str(*value, "unit");
      std::string bound_label = json::numberText(*limit) + " " + str(*bound, "unit");
      if (unit.empty() || bound_unit.empty() || str(*value, "system").empty()) {
        error(value_path, "invariant", "The quantity " + label + " cannot be compared to the allowed " +
                                           (is_min ? "minimum" : "maximum") + " of " + bound_label +
                                           " because no formal units are specified");
        return;
      }
      double left = json::numberAsDouble(*amount).value_or(0);
      double right = json::numberAsDouble(*limit).value_or(0);
      if (unit != bound_unit) {
        double left_factor = 0, right_factor = 0;
        char left_dimension = 0, right_dimension = 0;
        if (!ucumFactor(unit, left_factor, left_dimension) ||
            !ucumFactor(bound_unit, right_factor, right_dimension) || left_dimension != right_dimension) {
          error(value_path, "invariant", "The quantity " + label + " (UCUM#" + unit +
                                             ") cannot be compared to the allowed " +
                                             (is_min ? "minimum" : "maximum") + " of " + bound_label +
                                             " (UCUM#" + bound_unit + ")");
          return;
        }
        left *= left_factor;
        right *= right_factor;
      }
      if (is_min && left < right) {
        error(value_path, "invariant", "The quantity " + label + " is less than the allowed minimum of " + bound_label);
      }
      if (!is_min && left > right) {
        error(value_path, "invariant", "The quantity " + label + " is greater than the allowed maximum of " + bound_label);
      }
    };
    checkBound("sdc-questionnaire-minQuantity", true);
    checkBound("sdc-questionnaire-maxQuantity", false);
    auto unit_options = extensions(q_item, "questionnaire-unitOption");
    if (!unit_options.empty()) {
      bool found = false;
      std::string allowed_list;
      for (const json::Value* option : unit_options) {
        std::string option_type;
        const json::Value* coding = valueOf(*option, option_type);
        if (!coding || !coding->IsObject()) continue;
        if (!allowed_list.empty()) allowed_list += ",";
        allowed_list += str(*coding, "display") + " (UCUM#" + str(*coding, "code") + ")";
        found = found || (str(*coding, "code") == str(*value, "code") &&
                          str(*coding, "system") == str(*value, "system"));
      }
      if (!found) {
        error(value_path, "invariant", "The value " + scalarText(*json::find(*value, "value")) + " " +
                                           str(*value, "unit") + " has a unit that is not valid (allowed = " +
                                           allowed_list + ")");
      }
    }
    if (auto unit_set = extensions(q_item, "questionnaire-unitValueSet"); !unit_set.empty()) {
      std::string set_type;
      const json::Value* url = valueOf(*unit_set.front(), set_type);
      if (url && json::isString(*url)) {
        const terminology::Expansion& expansion = terminology_.expand(json::stringView(*url));
        std::string code = str(*value, "code");
        bool outside = code.empty() || terminology_.contains(expansion, str(*value, "system"), code) ==
                                           terminology::Membership::kNotMember;
        if (expansion.found && outside) {
          error(value_path, "invariant", "The value has a unit that is not in the unit value set '" +
                                             std::string(json::stringView(*url)) + "'");
        }
      }
    }
  }
  if (type == "Attachment" && value->IsObject()) {
    auto mime_types = extensions(q_item, "mimeType");
    std::string content_type = str(*value, "contentType");
    if (!mime_types.empty() && !content_type.empty()) {
      bool found = false;
      std::string allowed_list;
      for (const json::Value* mime : mime_types) {
        std::string mime_type;
        const json::Value* code = valueOf(*mime, mime_type);
        if (!code || !json::isString(*code)) continue;
        if (!allowed_list.empty()) allowed_list += ",";
        allowed_list += std::string(json::stringView(*code));
        found = found || json::stringView(*code) == content_type;
      }
      if (!found) {
        error(path, "invariant", "The mime type " + content_type +
                                     " is not valid for this answer (allowed = " + allowed_list + ")");
      }
    }
    if (const json::Value* max = extensionValue(q_item, "maxSize", ext_type); max && json::isNumber(*max)) {
      double limit = json::numberAsDouble(*max).value_or(0);
      double size = -1;
      if (const json::Value* stated = json::find(*value, "size"); stated && json::isNumber(*stated)) {
        size = json::numberAsDouble(*stated).value_or(-1);
      } else if (auto data = json::getString(*value, "data")) {
        size = static_cast<double>(data->size() / 4 * 3);
      }
      if (size > limit) {
        error(path, "invariant", "The attachment is too large (allowed = " + scalarText(*max) +
                                     ", found = " + std::to_string(static_cast<int64_t>(size)) + ")");
      }
    }
  }
  if (type == "Reference" && value->IsObject()) {
    std::string reference = str(*value, "reference");
    if (!reference.empty() && reference[0] != '#') {
      if (reference.find(' ') != std::string::npos) {
        error(value_path, "invalid", "The reference '" + reference + "' is not a valid reference");
      }
      std::string_view view = reference;
      size_t history = view.find("/_history/");
      if (history != std::string_view::npos) view = view.substr(0, history);
      size_t slash = view.rfind('/');
      std::string resource_type;
      if (slash != std::string_view::npos) {
        std::string_view rest = view.substr(0, slash);
        size_t type_slash = rest.rfind('/');
        resource_type = std::string(type_slash == std::string_view::npos ? rest : rest.substr(type_slash + 1));
      }
      bool known = !resource_type.empty() && is_resource_type_(resource_type);
      auto allowed_types = extensions(q_item, "questionnaire-referenceResource");
      if (!resource_type.empty() && !known) {
        error(value_path, "invariant", "The resource type " + resource_type + " in the reference " +
                                           reference + " is not valid");
      } else if (!resource_type.empty() && !allowed_types.empty()) {
        bool found = false;
        std::string allowed_list;
        for (const json::Value* allowed_type : allowed_types) {
          std::string code_type;
          const json::Value* code = valueOf(*allowed_type, code_type);
          if (!code || !json::isString(*code)) continue;
          if (!allowed_list.empty()) allowed_list += ",";
          allowed_list += std::string(json::stringView(*code));
          found = found || json::stringView(*code) == resource_type;
        }
        if (!found) {
          error(value_path, "invariant", "The resource type '" + resource_type + "' in the reference " +
                                             reference + " is not allowed (allowed = " + allowed_list + ")");
        }
      }
    }
  }
}

}  // namespace

void checkQuestionnaireResponse(const json::Value& response, const json::Value& questionnaire,
                                const std::string& path,
                                const terminology::Terminology& terminology,
                                const std::function<bool(std::string_view)>& is_resource_type,
                                IssueList& issues) {
  Checker checker(response, terminology, is_resource_type, issues);
  checker.items(array(questionnaire, "item"), array(response, "item"), path);
}

}  // namespace fhir::validator
