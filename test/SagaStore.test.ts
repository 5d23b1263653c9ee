import * as SagaStore from "../src/SagaStore.js"
import { suite } from "./suites/SagaStoreSuite.js"

suite("SagaStore.layerMemory", SagaStore.layerMemory)
