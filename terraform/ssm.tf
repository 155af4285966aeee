resource "aws_ssm_parameter" "setting" {
  #checkov:skip=CKV2_AWS_34:Non-secret tuning values (hours, seconds, bytes); secrets go to aws_ssm_parameter.secret as SecureString.
  for_each = local.settings
  name     = "${local.settings_path}${each.key}"
  type     = "String"
  value    = each.value
  # Operators may tune settings in the console; a later apply does not undo that.
  lifecycle {
    ignore_changes = [value]
  }
}

resource "aws_ssm_parameter" "secret" {
  for_each = nonsensitive(toset(keys(var.secure_settings)))
  name     = "${local.settings_path}${each.key}"
  type     = "SecureString"
  key_id   = aws_kms_key.main.arn
  value    = var.secure_settings[each.key]
}
