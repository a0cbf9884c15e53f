# examples/: apps to deploy with dms (examples/README.md). Nothing here is built; this fragment only tells
# tests/unit/test_dmsd_compose.c where the source tree's examples are, so the suite parses
# examples/compose-app/compose.yaml from any working directory.
$(OBJ_DIR)/tests/unit/test_dmsd_compose.o: DEFS += -DDMS_EXAMPLES_DIR='"$(abspath examples)"'
