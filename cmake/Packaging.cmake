# `cmake --install` and `make package` (CPack, .deb): docs/deploy.md.
#
# Layout under the prefix (/usr for the .deb):
#   bin/facevault                                  the binary (the web UI is built into it)
#   lib/python3/dist-packages/facevault/           the Python package (python/, component python)
#   share/man/man1/facevault.1.gz                  from the binary's --help (packaging/manpage.sh)
#   share/bash-completion/completions/facevault    when the binary has `completion bash`
#   lib/systemd/system/facevault.service           packaging/facevault.service.in
#   share/facevault/models.lock, scripts/fetch-models.sh   the operator fetches the models
#   share/doc/facevault/                           deploy, privacy and security docs
# and /etc/default/facevault (under the prefix's etc/ for other prefixes).
# No model weights are installed: their licences do not all allow redistribution.
include(GNUInstallDirs)

set(FACEVAULT_SYSTEMD_UNIT_DIR lib/systemd/system CACHE STRING
    "Where `cmake --install` puts facevault.service (relative to the prefix)")
set(FACEVAULT_BASH_COMPLETION_DIR share/bash-completion/completions CACHE STRING
    "Where `cmake --install` puts the bash completion (relative to the prefix)")
set(FACEVAULT_PACKAGE_MAINTAINER "facevault maintainers <maintainers@users.noreply.r-seed-28dbb500.example>"
    CACHE STRING "The Maintainer field of the .deb")

# cpack and `make install` build only what they install (the binary, the Python module), not
# the ~40 test executables that `all` holds; `make package` builds those targets first.
set(CMAKE_SKIP_INSTALL_ALL_DEPENDENCY ON)

install(TARGETS facevault RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT facevault)
# fetch-models.sh reads ../models.lock beside its own folder: the same layout as the source.
install(FILES ${CMAKE_SOURCE_DIR}/models.lock DESTINATION ${CMAKE_INSTALL_DATADIR}/facevault COMPONENT facevault)
install(PROGRAMS ${CMAKE_SOURCE_DIR}/scripts/fetch-models.sh
        DESTINATION ${CMAKE_INSTALL_DATADIR}/facevault/scripts COMPONENT facevault)
install(FILES ${CMAKE_SOURCE_DIR}/docs/deploy.md ${CMAKE_SOURCE_DIR}/docs/privacy.md ${CMAKE_SOURCE_DIR}/docs/security.md
        DESTINATION ${CMAKE_INSTALL_DOCDIR} COMPONENT facevault)
# The unit, settings file, man page and completion (cmake/InstallGenerated.cmake).
install(CODE "
  set(FACEVAULT_BINARY \"$<TARGET_FILE:facevault>\")
  set(FACEVAULT_SOURCE_DIR \"${CMAKE_SOURCE_DIR}\")
  set(FACEVAULT_GEN_DIR \"${CMAKE_BINARY_DIR}/packaging\")
  set(FACEVAULT_VERSION \"${PROJECT_VERSION}\")
  set(FACEVAULT_BINDIR \"${CMAKE_INSTALL_BINDIR}\")
  set(FACEVAULT_MANDIR \"${CMAKE_INSTALL_MANDIR}\")
  set(FACEVAULT_UNIT_DIR \"${FACEVAULT_SYSTEMD_UNIT_DIR}\")
  set(FACEVAULT_COMPLETION_DIR \"${FACEVAULT_BASH_COMPLETION_DIR}\")
  include(\"${CMAKE_SOURCE_DIR}/cmake/InstallGenerated.cmake\")
" COMPONENT facevault)

# --- CPack: one .deb holding every component (the binary, and the Python package if built) ---
get_cmake_property(FACEVAULT_INSTALL_COMPONENTS COMPONENTS)
set(CPACK_COMPONENTS_ALL facevault)
set(FACEVAULT_DEB_DEPENDS adduser)  # postinst creates the facevault user with it
if(python IN_LIST FACEVAULT_INSTALL_COMPONENTS)
  list(APPEND CPACK_COMPONENTS_ALL python)
  # The extension module is built for one CPython ABI (the interpreter python/ found) and
  # imports numpy for its array arguments.
  get_directory_property(_py_major DIRECTORY ${CMAKE_SOURCE_DIR}/python DEFINITION Python3_VERSION_MAJOR)
  get_directory_property(_py_minor DIRECTORY ${CMAKE_SOURCE_DIR}/python DEFINITION Python3_VERSION_MINOR)
  math(EXPR _py_next "${_py_minor} + 1")
  list(APPEND FACEVAULT_DEB_DEPENDS "python3 (>= ${_py_major}.${_py_minor})" "python3 (<< ${_py_major}.${_py_next})"
       python3-numpy)
endif()
list(JOIN FACEVAULT_DEB_DEPENDS ", " CPACK_DEBIAN_PACKAGE_DEPENDS)

set(CPACK_PACKAGE_NAME facevault)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "${FACEVAULT_PACKAGE_MAINTAINER}")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "lawful face recognition and face search")
set(CPACK_PACKAGE_DESCRIPTION
    "Face detection, templates, 1:1 verification and 1:N search, with a vault that enforces lawful \
bases, purpose-bound searches, a tamper-evident audit log and erasure by crypto-shredding. \
Command line, HTTP/JSON API with a web UI (facevault.service), Python module. \
The model files are fetched by the operator (/usr/share/facevault/scripts/fetch-models.sh).")
# Installed into DESTDIR with the prefix /usr, so that /etc/default/facevault lands in the
# package too (cmake/InstallGenerated.cmake puts settings in /etc for the /usr prefix).
set(CPACK_SET_DESTDIR ON)
set(CPACK_INSTALL_PREFIX /usr)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEB_COMPONENT_INSTALL OFF)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION science)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# Depends on the Debian libraries the binary and module link (dpkg-shlibdeps reads them).
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# npm runs the model fetch; the models may also be copied from another machine instead.
set(CPACK_DEBIAN_PACKAGE_SUGGESTS npm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${CMAKE_SOURCE_DIR}/packaging/deb/postinst
    ${CMAKE_SOURCE_DIR}/packaging/deb/prerm
    ${CMAKE_SOURCE_DIR}/packaging/deb/postrm
    ${CMAKE_SOURCE_DIR}/packaging/deb/conffiles)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_GENERATOR DEB)
include(CPack)
