import * as CheckpointStore from "../src/CheckpointStore.js"
import { suite } from "./suites/CheckpointStoreSuite.js"

// no transactions in memory: the suite's rollback checks do not apply
suite("CheckpointStore.layerMemory", CheckpointStore.layerMemory, { transactional: false })
