# Runs inside `cmake --install` (and CPack's install step), after the binary is installed:
# writes the files that depend on the install prefix or on the built binary, then installs
# them. Set by Packaging.cmake's install(CODE): FACEVAULT_BINARY (the built binary),
# FACEVAULT_SOURCE_DIR, FACEVAULT_GEN_DIR (scratch folder in the build tree),
# FACEVAULT_VERSION, FACEVAULT_BINDIR, FACEVAULT_MANDIR, FACEVAULT_UNIT_DIR,
# FACEVAULT_COMPLETION_DIR (relative to the prefix).
#
# Generated at install time rather than by a build target, so that a cpack or install run
# after building only `facevault` still has them, and they always describe that binary.

set(_prefix "${CMAKE_INSTALL_PREFIX}")
# Settings live in /etc for a /usr install (the .deb), under the prefix otherwise, so that
# `cmake --install build --prefix ~/opt/facevault` needs no root.
if(_prefix STREQUAL "/usr")
  set(_sysconf "/etc")
else()
  set(_sysconf "${_prefix}/etc")
endif()
file(MAKE_DIRECTORY "${FACEVAULT_GEN_DIR}/unit" "${FACEVAULT_GEN_DIR}/man" "${FACEVAULT_GEN_DIR}/completion")

# The settings file of the unit.
file(INSTALL DESTINATION "${_sysconf}/default" TYPE FILE
     FILES "${FACEVAULT_SOURCE_DIR}/packaging/facevault.default" RENAME facevault)

# The unit, pointing at the installed binary and settings file.
set(FACEVAULT_SYSCONF "${_sysconf}")
set(FACEVAULT_DEFAULTS_FILE "${_sysconf}/default/facevault")
if(IS_ABSOLUTE "${FACEVAULT_BINDIR}")
  set(FACEVAULT_EXEC "${FACEVAULT_BINDIR}/facevault")
else()
  set(FACEVAULT_EXEC "${_prefix}/${FACEVAULT_BINDIR}/facevault")
endif()
file(READ "${FACEVAULT_SOURCE_DIR}/packaging/facevault.service.in" _unit)
string(CONFIGURE "${_unit}" _unit @ONLY)
file(WRITE "${FACEVAULT_GEN_DIR}/unit/facevault.service" "${_unit}")
file(INSTALL DESTINATION "${_prefix}/${FACEVAULT_UNIT_DIR}" TYPE FILE
     FILES "${FACEVAULT_GEN_DIR}/unit/facevault.service")

# The man page, from the binary's --help texts, gzipped as Debian installs man pages.
execute_process(COMMAND bash "${FACEVAULT_SOURCE_DIR}/packaging/manpage.sh" "${FACEVAULT_BINARY}"
                        "${FACEVAULT_VERSION}" "${FACEVAULT_GEN_DIR}/man/facevault.1"
                RESULT_VARIABLE _rc)
if(NOT _rc EQUAL 0)
  message(FATAL_ERROR "facevault: generating the man page failed (${_rc})")
endif()
find_program(_gzip gzip)
set(_man "${FACEVAULT_GEN_DIR}/man/facevault.1")
if(_gzip)
  # -n: no name or time stamp inside, so the same page gives the same bytes.
  execute_process(COMMAND "${_gzip}" -9nf "${_man}" RESULT_VARIABLE _rc)
  if(NOT _rc EQUAL 0)
    message(FATAL_ERROR "facevault: gzip of the man page failed (${_rc})")
  endif()
  set(_man "${_man}.gz")
endif()
file(INSTALL DESTINATION "${_prefix}/${FACEVAULT_MANDIR}/man1" TYPE FILE FILES "${_man}")

# Bash completion, when the binary has a `completion` command (else none is installed).
execute_process(COMMAND "${FACEVAULT_BINARY}" completion bash
                OUTPUT_VARIABLE _completion ERROR_QUIET RESULT_VARIABLE _rc)
if(_rc EQUAL 0 AND NOT _completion STREQUAL "")
  file(WRITE "${FACEVAULT_GEN_DIR}/completion/facevault" "${_completion}")
  file(INSTALL DESTINATION "${_prefix}/${FACEVAULT_COMPLETION_DIR}" TYPE FILE
       FILES "${FACEVAULT_GEN_DIR}/completion/facevault")
else()
  message(STATUS "facevault: no `facevault completion bash` in this binary: no bash completion installed")
endif()
