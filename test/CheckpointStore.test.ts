import * as CheckpointStore from "../src/CheckpointStore.js"
import { suite } from "./suites/CheckpointStoreSuite.js"

// the memory store's transactions undo its own writes (checkpoints, dead letters) on failure
suite("CheckpointStore.layerMemory", CheckpointStore.layerMemory, { transactional: true })
