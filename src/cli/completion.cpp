#include "cli/completion.h"

#include <algorithm>
#include <cctype>
#include <functional>
#include <sstream>
#include <vector>

namespace fv::cli {
namespace {

using nlohmann::ordered_json;

constexpr const char* kProgram = "facevault";

// Names and choices go into shell words unquoted: only characters that need no quoting.
bool shell_safe(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](unsigned char c) {
    return std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '+' || c == ':';
  });
}

std::vector<const CLI::App*> subcommands_of(const CLI::App& app) {
  return app.get_subcommands([](const CLI::App* s) { return !s->get_disabled() && !s->get_group().empty(); });
}

// The fixed values of an option checked by CLI::IsMember, which describes itself as "{a,b,c}"
// after the type name ("TEXT:{a,b,c}").
std::vector<std::string> choices_of(const CLI::Option& opt) {
  const std::string type = opt.get_type_name();
  const auto open = type.find(":{");
  const auto close = type.find('}', open == std::string::npos ? 0 : open);
  if (open == std::string::npos || close == std::string::npos) return {};
  std::vector<std::string> out;
  std::istringstream in(type.substr(open + 2, close - open - 2));
  for (std::string item; std::getline(in, item, ',');)
    if (shell_safe(item)) out.push_back(item);
  return out;
}

ordered_json command_json(const CLI::App& app, const std::string& path) {
  ordered_json subs = ordered_json::array();
  for (const auto* s : subcommands_of(app)) subs.push_back(s->get_name());
  ordered_json options = ordered_json::array(), positionals = ordered_json::array();
  for (const auto* opt : app.get_options()) {
    if (opt->get_group().empty()) continue;  // hidden
    if (opt->get_positional())
      positionals.push_back({{"name", opt->get_name(true)}, {"required", opt->get_required()}, {"choices", choices_of(*opt)}});
    if (!opt->nonpositional()) continue;
    ordered_json names = ordered_json::array();
    for (const auto& s : opt->get_snames()) names.push_back("-" + s);
    for (const auto& l : opt->get_lnames()) names.push_back("--" + l);
    options.push_back({{"names", names},
                       {"takes_value", opt->get_items_expected_max() > 0},
                       {"required", opt->get_required()},
                       {"choices", choices_of(*opt)}});
  }
  return {{"command", path}, {"description", app.get_description()}, {"subcommands", subs},
          {"options", options}, {"positionals", positionals}};
}

void walk(const CLI::App& app, const std::string& path, ordered_json& out) {
  out.push_back(command_json(app, path));
  for (const auto* s : subcommands_of(app)) walk(*s, path.empty() ? s->get_name() : path + " " + s->get_name(), out);
}

std::string joined_words(const ordered_json& items) {
  std::string s;
  for (const auto& i : items) {
    const std::string w = i.get<std::string>();
    if (!shell_safe(w)) continue;
    s += (s.empty() ? "" : " ") + w;
  }
  return s;
}

// One `case "$1" in` function: for each command path, the words `words(command)` gives.
std::string case_function(const std::string& name, const ordered_json& commands,
                          const std::function<std::string(const ordered_json&)>& words) {
  std::string out = name + "() {\n  case \"$1\" in\n";
  for (const auto& c : commands) {
    const std::string w = words(c);
    if (w.empty()) continue;
    out += "    \"" + c["command"].get<std::string>() + "\") echo \"" + w + "\" ;;\n";
  }
  return out + "  esac\n}\n";
}

}  // namespace

ordered_json command_tree(const CLI::App& root) {
  ordered_json commands = ordered_json::array();
  walk(root, "", commands);
  return {{"program", kProgram}, {"commands", commands}};
}

std::string bash_completion(const CLI::App& root) {
  const ordered_json commands = command_tree(root)["commands"];
  std::string out =
      "# bash completion for facevault, written from its command parser by `facevault completion bash`.\n"
      "# Use: source <(facevault completion bash), or install it as\n"
      "# /usr/share/bash-completion/completions/facevault.\n\n";
  out += "# The subcommands of a command (\"\" is facevault itself).\n";
  out += case_function("_facevault_subcommands", commands, [](const ordered_json& c) { return joined_words(c["subcommands"]); });
  out += "# The fixed values of its positionals (with its subcommands, what a word may be).\n";
  out += case_function("_facevault_words", commands, [](const ordered_json& c) {
    ordered_json words = c["subcommands"];
    for (const auto& p : c["positionals"])
      for (const auto& v : p["choices"]) words.push_back(v);
    return joined_words(words);
  });
  out += "# Its options.\n";
  out += case_function("_facevault_options", commands, [](const ordered_json& c) {
    ordered_json names = ordered_json::array();
    for (const auto& o : c["options"])
      for (const auto& n : o["names"]) names.push_back(n);
    return joined_words(names);
  });
  out += "# Its options that take a value (the next word is that value).\n";
  out += case_function("_facevault_value_options", commands, [](const ordered_json& c) {
    ordered_json names = ordered_json::array();
    for (const auto& o : c["options"])
      if (o["takes_value"].get<bool>())
        for (const auto& n : o["names"]) names.push_back(n);
    return joined_words(names);
  });
  out += "# The fixed values of an option: $1 the command, $2 the option.\n";
  out += "_facevault_choices() {\n  case \"$1|$2\" in\n";
  for (const auto& c : commands)
    for (const auto& o : c["options"]) {
      const std::string choices = joined_words(o["choices"]);
      if (choices.empty()) continue;
      for (const auto& n : o["names"])
        out += "    \"" + c["command"].get<std::string>() + "|" + n.get<std::string>() + "\") echo \"" + choices + "\" ;;\n";
    }
  out += "  esac\n}\n\n";
  out +=
      "_facevault() {\n"
      "  local cur=\"${COMP_WORDS[COMP_CWORD]}\" prev=\"\" path=\"\" word i\n"
      "  if ((COMP_CWORD > 0)); then prev=\"${COMP_WORDS[COMP_CWORD - 1]}\"; fi\n"
      "  # The command typed so far: the words that name a subcommand of the one before.\n"
      "  for ((i = 1; i < COMP_CWORD; i++)); do\n"
      "    word=\"${COMP_WORDS[i]}\"\n"
      "    if [[ $word == -* ]]; then\n"
      "      if [[ $word != *=* && \" $(_facevault_value_options \"$path\") \" == *\" $word \"* ]]; then ((i++)); fi\n"
      "      continue\n"
      "    fi\n"
      "    if [[ \" $(_facevault_subcommands \"$path\") \" == *\" $word \"* ]]; then path=\"${path:+$path }$word\"; fi\n"
      "  done\n"
      "  COMPREPLY=()\n"
      "  if [[ $prev == -* && \" $(_facevault_value_options \"$path\") \" == *\" $prev \"* ]]; then\n"
      "    # A value: its choices, or nothing so that -o default completes a file name.\n"
      "    local choices\n"
      "    choices=\"$(_facevault_choices \"$path\" \"$prev\")\"\n"
      "    if [[ -n $choices ]]; then COMPREPLY=($(compgen -W \"$choices\" -- \"$cur\")); fi\n"
      "    return 0\n"
      "  fi\n"
      "  if [[ $cur == -* ]]; then\n"
      "    COMPREPLY=($(compgen -W \"$(_facevault_options \"$path\")\" -- \"$cur\"))\n"
      "  else\n"
      "    COMPREPLY=($(compgen -W \"$(_facevault_words \"$path\")\" -- \"$cur\"))\n"
      "  fi\n"
      "  return 0\n"
      "}\n"
      "complete -o default -F _facevault facevault\n";
  return out;
}

std::string zsh_completion(const CLI::App& root) {
  return "#compdef facevault\n"
         "# zsh completion for facevault: the bash completion through zsh's bashcompinit.\n"
         "# Use: source <(facevault completion zsh)\n"
         "autoload -U +X bashcompinit && bashcompinit\n\n" +
         bash_completion(root);
}

}  // namespace fv::cli
