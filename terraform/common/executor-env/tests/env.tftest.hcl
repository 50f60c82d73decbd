# No provider involved: these runs evaluate the module's outputs directly.
variables {
  env = {
    EXECUTOR_FRONTEND_URL      = "https://fleet.example.com"
    EXECUTOR_FRONTEND_PASSWORD = "a'b\"c $HOME `id` \\n  d"
    EXECUTOR_QUEUE_NAME        = "codeintel"
    EXECUTOR_RUNTIME           = null
  }
}

run "quotes_every_value_and_drops_nulls" {
  command = plan

  assert {
    condition     = output.content == "EXECUTOR_FRONTEND_PASSWORD='a'\\''b\"c $HOME `id` \\n  d'\nEXECUTOR_FRONTEND_URL='https://fleet.example.com'\nEXECUTOR_QUEUE_NAME='codeintel'\n"
    error_message = "unexpected env file: ${nonsensitive(output.content)}"
  }

  assert {
    condition     = output.names == tolist(["EXECUTOR_FRONTEND_PASSWORD", "EXECUTOR_FRONTEND_URL", "EXECUTOR_QUEUE_NAME"])
    error_message = "names must be sorted and leave out null settings"
  }
}

run "refuses_unknown_names" {
  command = plan

  variables {
    env = { EXECUTOR_KEEP_WORKSPACE = "true" }
  }

  expect_failures = [output.content]
}

run "refuses_line_breaks" {
  command = plan

  variables {
    env = { EXECUTOR_FRONTEND_PASSWORD = "one\ntwo" }
  }

  expect_failures = [var.env]
}
