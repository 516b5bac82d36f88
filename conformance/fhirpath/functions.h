// SPDX-License-Identifier: Apache-2.0
#pragma once

// Internals of the FHIRPath function library: one file per section of the specification
// (functions_<section>.cc), each an Evaluator member that handles its section's functions;
// functions.cc maps every Fn to its section's handler in one table.

#include <optional>
#include <string>
#include <string_view>

#include "conformance/fhirpath/evaluator.h"

namespace fhir::fhirpath {

inline Collection boolean(bool value) { return {Item::boolean(value)}; }

// The arguments of one function call, and the helpers every section uses to read them.
class FunctionCall {
 public:
  FunctionCall(Evaluator& evaluator, const Node& node, const Collection& focus)
      : argc(node.children.size() - (node.has_source ? 1 : 0)),
        evaluator_(evaluator),
        node_(node),
        focus_(focus),
        first_arg_(node.has_source ? 1 : 0) {}

  const size_t argc;  // number of arguments
  const Node& arg(size_t i) const { return *node_.children[first_arg_ + i]; }
  const Item* single(const char* what) const { return evaluator_.singleton(focus_, what); }
  // A primitive element that only has extensions (`_given` without `given`) has no value: the
  // functions treat it like an empty input.
  static bool valueless(const Item& item) { return item.isNode() && item.value() == nullptr; }

  std::optional<std::string> stringFocus() const {
    const Item* item = single(node_.name.c_str());
    if (item == nullptr || valueless(*item)) return std::nullopt;
    Val val = evaluator_.view(*item);
    if (val.kind != Item::Kind::kString) {
      throw EvalError{node_.name + "() requires a string input"};
    }
    return std::string(val.text);
  }
  // Views into argument values stay valid while this FunctionCall lives. i < 2.
  std::optional<std::string_view> stringArg(size_t i) {
    const Collection& value = evaluator_.evalArgShared(arg(i), arg_storage_[i]);
    const Item* item = evaluator_.singleton(value, node_.name.c_str());
    if (item == nullptr) return std::nullopt;
    Val val = evaluator_.view(*item);
    if (val.kind != Item::Kind::kString) {
      throw EvalError{node_.name + "() requires a string argument"};
    }
    return val.text;
  }
  std::optional<int64_t> integerArg(size_t i) const {
    Collection storage;
    return evaluator_.singletonInteger(evaluator_.evalArgShared(arg(i), storage),
                                       node_.name.c_str());
  }
  std::optional<Val> numberFocus() const {
    const Item* item = single(node_.name.c_str());
    if (item == nullptr || valueless(*item)) return std::nullopt;
    Val val = evaluator_.view(*item);
    if (!isNumeric(val.kind) && val.kind != Item::Kind::kQuantity) {
      throw EvalError{node_.name + "() requires a number"};
    }
    return val;
  }

 private:
  Evaluator& evaluator_;
  const Node& node_;
  const Collection& focus_;
  size_t first_arg_;
  Collection arg_storage_[2];
};

}  // namespace fhir::fhirpath
